//! Writes carried on one `Store.WriteStream` per node. Each write travels as one message of a
//! stream the client keeps open to the node, and its answer comes back on the answer stream
//! under the write's tag, so many concurrent writes share one HTTP/2 stream instead of opening
//! one each. A stream that breaks fails the writes waiting on it with UNAVAILABLE (the caller
//! retries them with the same request id, so none is applied twice) and the next write opens a
//! new one. A node that does not serve `WriteStream` gets unary calls from then on.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use qastore_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

use crate::connector::Connector;
use crate::error::ClientError;

/// Writes queued for a stream before its sender waits for room.
const QUEUED_PER_STREAM: usize = 1024;

/// What a streamed write comes back with: the answer, and the leader's address when a
/// follower passed the write on.
pub(crate) type StreamedAnswer = (pb::WriteResponse, Option<String>);

type Waiter = oneshot::Sender<Result<StreamedAnswer, Status>>;

/// Where a registered write's answer arrives.
type Answer = oneshot::Receiver<Result<StreamedAnswer, Status>>;

/// The write streams of one client, one per node address.
#[derive(Debug)]
pub(crate) struct WriteStreams {
    connector: Connector,
    open: Mutex<HashMap<String, Arc<OpenStream>>>,
    /// Nodes that answered UNIMPLEMENTED: they get unary writes.
    unary_only: Mutex<HashSet<String>>,
    tags: AtomicU64,
}

/// One open stream: where its writes are queued and who waits for which answer.
#[derive(Debug)]
struct OpenStream {
    queue: mpsc::Sender<pb::StreamedWrite>,
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    by_tag: HashMap<u64, Waiter>,
    /// Set once the stream has ended: no write may wait on it any more.
    ended: bool,
}

/// Takes a write's waiter out of its stream when the caller stops waiting (answered, timed
/// out or dropped).
struct Registration<'a> {
    stream: &'a OpenStream,
    tag: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.stream.waiting.lock().by_tag.remove(&self.tag);
    }
}

impl WriteStreams {
    /// Streams opened through `connector`'s channels.
    pub(crate) fn new(connector: Connector) -> WriteStreams {
        WriteStreams {
            connector,
            open: Mutex::new(HashMap::new()),
            unary_only: Mutex::new(HashSet::new()),
            tags: AtomicU64::new(1),
        }
    }

    /// Whether writes to `addr` go on a stream (false once the node answered UNIMPLEMENTED).
    pub(crate) fn serves(&self, addr: &str) -> bool {
        !self.unary_only.lock().contains(addr)
    }

    /// Sends `write` on the stream to `addr` and waits up to `timeout` for its answer. A
    /// failed write comes back as the status a unary call would have returned.
    pub(crate) async fn write(
        &self,
        addr: &str,
        write: pb::WriteRequest,
        timeout: Duration,
    ) -> Result<StreamedAnswer, ClientError> {
        let tag = self.tags.fetch_add(1, Ordering::Relaxed);
        let (stream, answer) = self.register(addr, tag)?;
        let _registered = Registration {
            stream: &stream,
            tag,
        };
        let message = pb::StreamedWrite {
            tag,
            write: Some(write),
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        };
        if stream.queue.send(message).await.is_err() {
            return Err(stream_broke(addr, "it closed before the write was sent"));
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(Ok(answer))) => Ok(answer),
            Ok(Ok(Err(status))) => {
                if status.code() == Code::Unimplemented && status.metadata().is_empty() {
                    self.unary_only.lock().insert(addr.to_string());
                }
                Err(ClientError::from(status))
            }
            Ok(Err(_)) => Err(stream_broke(addr, "it ended before the answer came")),
            Err(_) => Err(ClientError::from(Status::deadline_exceeded(format!(
                "the write was not answered within {timeout:?}; retry with the same request id"
            )))),
        }
    }

    /// Registers a waiter for `tag` on the open stream to `addr`, opening one if there is none
    /// or the last one ended.
    fn register(&self, addr: &str, tag: u64) -> Result<(Arc<OpenStream>, Answer), ClientError> {
        let (tx, rx) = oneshot::channel();
        let mut open = self.open.lock();
        if let Some(stream) = open.get(addr) {
            let mut waiting = stream.waiting.lock();
            if !waiting.ended {
                waiting.by_tag.insert(tag, tx);
                drop(waiting);
                return Ok((stream.clone(), rx));
            }
        }
        let stream = self.start(addr)?;
        stream.waiting.lock().by_tag.insert(tag, tx);
        open.insert(addr.to_string(), stream.clone());
        Ok((stream, rx))
    }

    /// Opens a stream to `addr` and starts the task that reads its answers.
    fn start(&self, addr: &str) -> Result<Arc<OpenStream>, ClientError> {
        let mut store = self.connector.store_at(addr)?;
        let (queue, queued) = mpsc::channel(QUEUED_PER_STREAM);
        let stream = Arc::new(OpenStream {
            queue,
            waiting: Mutex::new(Waiting::default()),
        });
        let reader = stream.clone();
        let addr = addr.to_string();
        tokio::spawn(async move {
            let ended = match store.write_stream(ReceiverStream::new(queued)).await {
                Ok(answers) => read_answers(&reader, answers.into_inner(), &addr).await,
                // Refused as a whole (not served here, not a member, unreachable): every write
                // waiting gets the node's own status.
                Err(status) => status,
            };
            let waiters = {
                let mut waiting = reader.waiting.lock();
                waiting.ended = true;
                std::mem::take(&mut waiting.by_tag)
            };
            for (_, waiter) in waiters {
                let _ = waiter.send(Err(ended.clone()));
            }
        });
        Ok(stream)
    }
}

/// Hands each answer to the write waiting for it until the stream ends; returns why it ended.
async fn read_answers(
    stream: &OpenStream,
    mut answers: tonic::Streaming<pb::StreamedWriteAnswer>,
    addr: &str,
) -> Status {
    loop {
        let answer = match answers.message().await {
            Ok(Some(a)) => a,
            Ok(None) => return Status::unavailable(format!("the write stream to {addr} ended")),
            // The connection failed mid-stream: the writes in flight may or may not have been
            // applied, and a retry with the same request id finds out.
            Err(status) => {
                return Status::unavailable(format!(
                    "the write stream to {addr} failed: {}",
                    status.message()
                ))
            }
        };
        let Some(waiter) = stream.waiting.lock().by_tag.remove(&answer.tag) else {
            // Its writer stopped waiting (timed out or dropped).
            continue;
        };
        let result = match answer.outcome {
            Some(pb::streamed_write_answer::Outcome::Written(response)) => {
                let hint = (!answer.leader_hint.is_empty()).then_some(answer.leader_hint);
                Ok((response, hint))
            }
            Some(pb::streamed_write_answer::Outcome::Failed(failure)) => Err(failure.to_status()),
            None => Err(Status::internal(format!(
                "the node at {addr} answered write {} with neither a result nor a failure",
                answer.tag
            ))),
        };
        let _ = waiter.send(result);
    }
}

fn stream_broke(addr: &str, how: &str) -> ClientError {
    ClientError::from(Status::unavailable(format!(
        "the write stream to {addr} broke: {how}; retry with the same request id"
    )))
}
