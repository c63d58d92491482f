"""Prints QAStore's committed events as JSON lines, resuming on another node when one goes away.

Uses only the code that grpcio-tools generates from the repository's `proto/` files (see
README.md). Each event is one line on stdout:

    {"position": "42:0", "commit_time_ns": ..., "commit_time": "...", "kind": "tick",
     "outcome": "OUTCOME_TICK_RECORDED", "record": {...}}

Every node serves the same positions, so when a stream breaks the subscriber opens a new one on
the next endpoint, right after the last position it printed: the output has no gap and no
duplicate.
"""

import argparse
import datetime
import json
import os
import sys
import time

import grpc
from google.protobuf import json_format

# The generated modules: `generated/` beside this file, unless PYTHONPATH names another folder.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated"))
from qastore.v1 import feed_pb2, feed_pb2_grpc, records_pb2  # noqa: E402

# Errors after which another node (or the same one, later) can go on with the stream. Any
# other (a bad filter, a start the journal no longer holds) is final.
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}

# A node that stops answering (frozen, cut off) is given up on after about this long.
KEEPALIVE_MS = 5_000


def parse_position(text):
    """`INDEX:ORDINAL` as a (log_index, ordinal) pair."""
    index, sep, ordinal = text.partition(":")
    if not sep or not index.isdigit() or not ordinal.isdigit():
        raise argparse.ArgumentTypeError(f"expected INDEX:ORDINAL, got {text!r}")
    return int(index), int(ordinal)


def parse_start(text):
    """`oldest`, `tail` or a position to start right after."""
    if text in ("oldest", "tail"):
        return text
    return parse_position(text)


def split_list(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--endpoint",
        action="append",
        required=True,
        help="HOST:PORT of a node's client API; repeat (or separate with commas) to fail over",
    )
    p.add_argument(
        "--kinds",
        type=split_list,
        default=[],
        help="orders,trades,accounts,positions,ticks,books (default: all)",
    )
    p.add_argument(
        "--instruments",
        type=split_list,
        default=[],
        help="instrument ids, or EXCHANGE.id (default: all)",
    )
    p.add_argument(
        "--from",
        dest="start",
        type=parse_start,
        default="tail",
        help="oldest, tail (the default), or INDEX:ORDINAL to start right after",
    )
    p.add_argument("--limit", type=int, default=0, help="stop after N events (0: never)")
    p.add_argument("--progress", action="store_true", help="also print progress frames")
    args = p.parse_args()
    args.endpoint = [e.removeprefix("http://") for arg in args.endpoint for e in split_list(arg)]
    for kind in args.kinds:
        if "RECORD_KIND_" + kind.upper() not in feed_pb2.RecordKind.keys():
            p.error(f"--kinds: unknown kind {kind!r}")
    return args


def request(args, after):
    """The Subscribe request: from `after` when known, otherwise from `--from`."""
    flt = feed_pb2.EventFilter(
        kinds=[feed_pb2.RecordKind.Value("RECORD_KIND_" + k.upper()) for k in args.kinds],
        instruments=args.instruments,
    )
    start = after if after is not None else args.start
    if start == "oldest":
        at = feed_pb2.StartAt(oldest=True)
    elif start == "tail":
        at = feed_pb2.StartAt(tail=True)
    else:
        at = feed_pb2.StartAt(after=feed_pb2.Position(log_index=start[0], ordinal=start[1]))
    return feed_pb2.SubscribeRequest(filter=flt, start=at, mode=feed_pb2.DELIVERY_MODE_REALTIME)


def as_text(position):
    return f"{position.log_index}:{position.ordinal}"


def event_line(event):
    kind = event.record.WhichOneof("kind")
    stamp = datetime.datetime.fromtimestamp(event.commit_time_ns / 1e9, datetime.timezone.utc)
    return {
        "position": as_text(event.position),
        "commit_time_ns": event.commit_time_ns,
        "commit_time": stamp.isoformat() if event.commit_time_ns else None,
        "kind": kind,
        "outcome": records_pb2.Outcome.Name(event.result.outcome),
        "record": json_format.MessageToDict(
            getattr(event.record, kind),
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        ),
    }


def emit(line):
    print(json.dumps(line), flush=True)


def subscribe(args):
    """Streams until `--limit` events are printed; fails over between endpoints for ever."""
    after = None  # The last position everything up to which was printed.
    printed = 0
    attempt = 0
    while True:
        endpoint = args.endpoint[attempt % len(args.endpoint)]
        options = [
            ("grpc.keepalive_time_ms", KEEPALIVE_MS),
            ("grpc.keepalive_timeout_ms", KEEPALIVE_MS),
            ("grpc.http2.max_pings_without_data", 0),
        ]
        with grpc.insecure_channel(endpoint, options=options) as channel:
            stream = feed_pb2_grpc.FeedStub(channel).Subscribe(request(args, after))
            try:
                for frame in stream:
                    attempt = 0
                    which = frame.WhichOneof("frame")
                    if which == "events":
                        for event in frame.events.events:
                            pos = (event.position.log_index, event.position.ordinal)
                            if after is not None and pos <= after:
                                continue  # Already printed before a reconnect.
                            emit(event_line(event))
                            after = pos
                            printed += 1
                            if printed == args.limit:
                                stream.cancel()
                                return
                    elif which == "progress":
                        # Everything matching up to `applied` was sent: a later stream can
                        # start there even if no event matched.
                        applied = frame.progress.applied
                        after = max(after or (0, 0), (applied.log_index, applied.ordinal))
                        if args.progress:
                            emit({
                                "progress": as_text(applied),
                                "commit_time_ns": frame.progress.commit_time_ns,
                                "node_id": frame.progress.node_id,
                            })
                # A stream only ends when the node stops serving it: go on elsewhere.
                reason = "the stream ended"
            except grpc.RpcError as e:
                if e.code() not in RETRYABLE:
                    sys.exit(f"{endpoint}: {e.code().name}: {e.details()}")
                reason = f"{e.code().name}: {e.details()}"
        attempt += 1
        resume = "--from " + (f"{after[0]}:{after[1]}" if after else str(args.start))
        next_endpoint = args.endpoint[attempt % len(args.endpoint)]
        print(f"{endpoint}: {reason}; resuming on {next_endpoint} {resume}", file=sys.stderr)
        if attempt % len(args.endpoint) == 0:
            # Every endpoint failed in a row: wait a little before the next round.
            time.sleep(min(0.2 * attempt, 5.0))


def main():
    args = parse_args()
    try:
        subscribe(args)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # The reader went away (`| head`): send what is left to nowhere and end quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    main()
