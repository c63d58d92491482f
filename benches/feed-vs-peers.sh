#!/usr/bin/env bash
# Subscriptions side by side on this machine: QAStore's Feed service, etcd watches and NATS
# JetStream push consumers, three nodes each on loopback, one system at a time under the same
# fixed write rate. Installs etcd (Debian's etcd-server), nats-server, and protoc with
# protobuf's well-known types (needed to build the etcd client) when missing; builds release,
# runs, prints the table and writes target/feed-vs-peers/feed-vs-peers.{json,md}. Arguments go
# to the benchmark (e.g. --measure-secs 5 --trials 20; see --help).
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

missing=()
have etcd || missing+=(etcd-server)
have nats-server || missing+=(nats-server)
have protoc || missing+=(protobuf-compiler)
# The etcd client's protos import protobuf's well-known types, which protoc alone lacks.
[ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
# A package may start its system service; it would take CPU (and ports) from the benchmark.
if command -v systemctl >/dev/null 2>&1; then
  for service in etcd nats-server; do
    if systemctl is-active --quiet "$service" 2>/dev/null; then
      echo "stopping the system $service service for the run" >&2
      $sudo systemctl stop "$service"
    fi
  done
fi

cargo build --release -p qastore -p qastore-benches --features qastore-benches/etcd,qastore-benches/nats \
  --bin qastore --bin feed_vs_peers
exec "${CARGO_TARGET_DIR:-target}/release/feed_vs_peers" "$@"
