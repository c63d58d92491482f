#!/usr/bin/env bash
# QAStore and etcd side by side on this machine: installs etcd (Debian's etcd-server), and
# protoc with protobuf's well-known types (needed to build the etcd client), when missing;
# builds, runs a three-node cluster of each system on loopback one after the other under the
# same load, prints the table and writes
# target/cluster-vs-etcd/cluster-vs-etcd.{json,md}. Arguments go to the benchmark
# (e.g. --measure-secs 5 --trials 3; see --help).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
# The etcd client's protos import protobuf's well-known types, which protoc alone lacks.
[ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
# The package may start a system etcd; it would take CPU (and port 2379) from the benchmark.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  echo "stopping the system etcd service for the run" >&2
  systemctl stop etcd
fi

cargo build --release -p qastore -p qastore-benches --features qastore-benches/etcd \
  --bin qastore --bin cluster_vs_etcd
exec "${CARGO_TARGET_DIR:-target}/release/cluster_vs_etcd" "$@"
