//! Generates the gRPC code from `qastore/v1/*.proto` with a pure-Rust protobuf compiler
//! (protox), so building needs no system `protoc`.

use std::path::PathBuf;

/// Messages that also get serde (JSON for the CLI: `ctl write` reads records as JSON lines,
/// `--output json` prints answers). Enum fields are written by name (see `serde_enums`);
/// `Record` is written as its kind (see `record_json`).
const SERDE_MESSAGES: &[&str] = &[
    "OrderInsert",
    "OrderUpdate",
    "TradeExecuted",
    "AccountUpdate",
    "PositionUpdate",
    "Tick",
    "Level",
    "OrderBookSnapshot",
    "RecordResult",
    "JournalEntry",
    "OrderState",
    "OrderView",
    "ServedBy",
    "WriteResponse",
    "Bar",
    "Position",
    "Event",
    "Progress",
    "ConsumerInfo",
];

/// Enum fields and the enum they hold.
const ENUM_FIELDS: &[(&str, &str)] = &[
    ("OrderInsert.direction", "direction"),
    ("OrderInsert.offset", "offset"),
    ("OrderInsert.price_type", "price_type"),
    ("OrderInsert.time_condition", "time_condition"),
    ("OrderInsert.volume_condition", "volume_condition"),
    ("OrderInsert.status", "order_status"),
    ("OrderUpdate.status", "order_status"),
    ("TradeExecuted.direction", "direction"),
    ("TradeExecuted.offset", "offset"),
    ("RecordResult.outcome", "outcome"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let files = [
        "qastore/v1/raft_peer.proto",
        "qastore/v1/records.proto",
        "qastore/v1/store.proto",
        "qastore/v1/admin.proto",
        "qastore/v1/feed.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let descriptors = protox::compile(files, [&root])?;
    write_method_list(&descriptors)?;
    let mut config = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Entry batches and snapshot chunks are passed on without copying.
        .bytes(".");
    for m in SERDE_MESSAGES {
        config = config.message_attribute(
            format!(".qastore.v1.{m}"),
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default, deny_unknown_fields)]",
        );
    }
    // A record reads `{"order_insert": {...}}`.
    config = config.enum_attribute(
        ".qastore.v1.Record.kind",
        "#[derive(serde::Serialize, serde::Deserialize)] #[serde(rename_all = \"snake_case\")]",
    );
    for (field, module) in ENUM_FIELDS {
        config = config.field_attribute(
            format!(".qastore.v1.{field}"),
            format!("#[serde(with = \"crate::serde_enums::{module}\")]"),
        );
    }
    config.compile_fds(descriptors)?;
    feed_frames_server();
    Ok(())
}

/// Writes `methods.rs`: the path of every method of the client-facing services, so that code
/// which must decide something per method (who may call it) can be checked against all of them.
fn write_method_list(
    descriptors: &prost_types::FileDescriptorSet,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut paths = Vec::new();
    for file in &descriptors.file {
        let package = file.package();
        for service in &file.service {
            if service.name() == "RaftPeer" {
                continue;
            }
            for method in &service.method {
                paths.push(format!("/{package}.{}/{}", service.name(), method.name()));
            }
        }
    }
    let mut out = String::from(
        "/// The path of every method of the client-facing services (`Store`, `Admin`, `Feed`).\n\
         pub const API_METHODS: &[&str] = &[\n",
    );
    for p in &paths {
        out.push_str(&format!("    {p:?},\n"));
    }
    out.push_str("];\n");
    let dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(dir.join("methods.rs"), out)?;
    Ok(())
}

/// The `Feed` service's server as the node serves it: `Subscribe` writes frames of events
/// encoded once (`frames::SubscribeCodec`), the other calls are plain protobuf. Same service
/// name and routes as `feed.proto`'s, so the generated client (and any other) talks to it.
fn feed_frames_server() {
    use tonic_build::manual::{Builder, Method, Service};
    let unary = |name: &str, route: &str, input: &str, output: &str| {
        Method::builder()
            .name(name)
            .route_name(route)
            .input_type(format!("crate::v1::{input}"))
            .output_type(format!("crate::v1::{output}"))
            .codec_path("tonic_prost::ProstCodec")
            .build()
    };
    let service = Service::builder()
        .name("Feed")
        .package("qastore.v1")
        .method(
            Method::builder()
                .name("subscribe")
                .route_name("Subscribe")
                .input_type("crate::v1::SubscribeRequest")
                .output_type("crate::frames::SubscribeFrame")
                .codec_path("crate::frames::SubscribeCodec")
                .server_streaming()
                .build(),
        )
        .method(unary(
            "create_consumer",
            "CreateConsumer",
            "CreateConsumerRequest",
            "ConsumerInfo",
        ))
        .method(unary("ack", "Ack", "AckRequest", "AckResponse"))
        .method(unary(
            "list_consumers",
            "ListConsumers",
            "ListConsumersRequest",
            "ListConsumersResponse",
        ))
        .method(unary(
            "get_consumer",
            "GetConsumer",
            "GetConsumerRequest",
            "ConsumerInfo",
        ))
        .method(unary(
            "delete_consumer",
            "DeleteConsumer",
            "DeleteConsumerRequest",
            "DeleteConsumerResponse",
        ))
        .build();
    Builder::new().build_client(false).compile(&[service]);
}
