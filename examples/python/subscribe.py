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
import threading
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

# An idle stream gets a progress frame this often; a node that sends nothing at all for
# IDLE_LIMIT_S (frozen, or its host unreachable) is given up on.
HEARTBEAT_MS = 1_000
IDLE_LIMIT_S = 5.0


def retryable(error, resuming):
    """Whether another node (or the same one, later) may go on where this stream stopped."""
    if error.code() in RETRYABLE:
        return True
    # A node cut off from its leader cannot tell that a position another node sent is
    # committed, and refuses it as a start: the next node can serve it.
    return (
        resuming
        and error.code() == grpc.StatusCode.INVALID_ARGUMENT
        and "start.after" in (error.details() or "")
    )


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
    start = after or args.start
    if start == "oldest":
        at = feed_pb2.StartAt(oldest=True)
    elif start == "tail":
        at = feed_pb2.StartAt(tail=True)
    else:
        at = feed_pb2.StartAt(after=feed_pb2.Position(log_index=start[0], ordinal=start[1]))
    return feed_pb2.SubscribeRequest(
        filter=flt, start=at, mode=feed_pb2.DELIVERY_MODE_REALTIME, heartbeat_ms=HEARTBEAT_MS
    )


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
    print(json.dumps(line, ensure_ascii=False), flush=True)


class Output:
    """What was printed so far: a new stream starts right after `after`."""

    def __init__(self, args):
        self.after = None  # (log_index, ordinal); None until the first event or progress.
        self.printed = 0
        self.frames = 0
        self.limit = args.limit
        self.show_progress = args.progress

    def events(self, batch):
        """Prints the events not printed yet; answers whether the limit is reached."""
        for event in batch.events:
            pos = (event.position.log_index, event.position.ordinal)
            if self.after is not None and pos <= self.after:
                continue  # Printed before a reconnect.
            emit(event_line(event))
            self.after = pos
            self.printed += 1
            if self.printed == self.limit:
                return True
        return False

    def progress(self, progress):
        # Everything matching up to `applied` was sent: a later stream can start there even
        # if no event matched since.
        applied = progress.applied
        self.after = max(self.after or (0, 0), (applied.log_index, applied.ordinal))
        if self.show_progress:
            emit({
                "progress": as_text(applied),
                "commit_time_ns": progress.commit_time_ns,
                "node_id": progress.node_id,
            })


class Watchdog:
    """Cancels a stream that sends nothing, not even a progress frame, for IDLE_LIMIT_S while
    we wait for it (time spent printing does not count)."""

    def __init__(self, call):
        self.call = call
        self.waiting_since = None
        self.fired = False
        self.stopped = threading.Event()
        threading.Thread(target=self.watch, daemon=True).start()

    def watch(self):
        while not self.stopped.wait(0.5):
            since = self.waiting_since
            if since is not None and time.monotonic() - since > IDLE_LIMIT_S:
                self.fired = True
                self.call.cancel()
                return

    def frames(self):
        frames = iter(self.call)
        while True:
            self.waiting_since = time.monotonic()
            frame = next(frames, None)
            self.waiting_since = None
            if frame is None:
                return
            yield frame


def stream_from(endpoint, args, out):
    """Prints one stream from `endpoint`: None once the limit is reached, otherwise why the
    stream broke. Exits on an error no other node would answer differently."""
    with grpc.insecure_channel(endpoint) as channel:
        call = feed_pb2_grpc.FeedStub(channel).Subscribe(request(args, out.after))
        watchdog = Watchdog(call)
        try:
            for frame in watchdog.frames():
                out.frames += 1
                which = frame.WhichOneof("frame")
                if which == "events" and out.events(frame.events):
                    call.cancel()
                    return None
                if which == "progress":
                    out.progress(frame.progress)
        except grpc.RpcError as e:
            if watchdog.fired:
                return f"nothing received for {IDLE_LIMIT_S:.0f} s"
            if not retryable(e, resuming=out.after is not None):
                sys.exit(f"{endpoint}: {e.code().name}: {e.details()}")
            return f"{e.code().name}: {e.details()}"
        finally:
            watchdog.stopped.set()
    return "the stream ended"


def subscribe(args):
    """Streams until `--limit` events are printed, moving to the next endpoint whenever a
    stream breaks."""
    out = Output(args)
    current = 0
    failures = 0  # Streams in a row that broke before sending anything.
    while True:
        endpoint = args.endpoint[current]
        frames = out.frames
        reason = stream_from(endpoint, args, out)
        if reason is None:
            return
        failures = failures + 1 if out.frames == frames else 0
        current = (current + 1) % len(args.endpoint)
        start = out.after or args.start
        if isinstance(start, tuple):
            start = f"{start[0]}:{start[1]}"
        print(
            f"{endpoint}: {reason}; resuming on {args.endpoint[current]} --from {start}",
            file=sys.stderr,
        )
        if failures and failures % len(args.endpoint) == 0:
            # Every endpoint failed in a row: wait a little before the next round.
            time.sleep(min(0.2 * failures, 5.0))


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
