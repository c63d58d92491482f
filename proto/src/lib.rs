//! QAStore's public API: the `.proto` files of package `qastore.v1` and the code generated from
//! them (at build time, without a system `protoc`).
