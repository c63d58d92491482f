//! `Store.WriteStream`: many writes on one gRPC stream. A unary `Write` costs an HTTP/2 stream
//! of its own each way (headers, data, trailers, and a task); a client with many writes in
//! flight sends them all as data frames of one stream instead. Each write is served exactly as
//! a unary `Write` (forwarded, admitted, proposed, applied) in a task of its own, and answered
//! under its tag as soon as it is done, so a slow write never holds up the others.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use qastore_proto::api_metadata;
use qastore_proto::v1 as pb;
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Status, Streaming};

use crate::forward::callers_metadata;
use crate::store_service::StoreService;

/// The most writes of one stream served at once; the stream is read no further until one
/// finishes, so a caller that sends faster than the node answers is held back by HTTP/2 flow
/// control rather than by memory.
pub const MAX_IN_FLIGHT_PER_STREAM: usize = 4096;

/// The longest a write may ask for (as a unary call's `grpc-timeout` may).
const MAX_WRITE_TIMEOUT: Duration = Duration::from_secs(600);

/// The answers of one write stream.
pub type Answers = Pin<Box<dyn Stream<Item = Result<pb::StreamedWriteAnswer, Status>> + Send>>;

/// Serves the writes arriving on `request`'s stream and returns the stream of their answers.
pub fn serve(service: StoreService, request: Request<Streaming<pb::StreamedWrite>>) -> Answers {
    let (metadata, _, mut inbound) = request.into_parts();
    // Only the caller's own metadata applies to each write: the stream's deadline bounds the
    // stream, not each write, and no stream is a node's forwarded write.
    let metadata = Arc::new(callers_metadata(&metadata));
    let (answers, rx) = mpsc::channel(MAX_IN_FLIGHT_PER_STREAM);
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_STREAM));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let write = match inbound.message().await {
                Ok(Some(w)) => w,
                Ok(None) => return,
                Err(status) => {
                    tracing::debug!(%status, "a write stream ended");
                    return;
                }
            };
            let received = Instant::now();
            let (service, metadata, answers) = (service.clone(), metadata.clone(), answers.clone());
            tokio::spawn(async move {
                let answer = serve_one(&service, &metadata, write, received).await;
                // A caller gone away gets no answer; its write may still be applied, and a
                // retry with the same request id gets the first answer.
                let _ = answers.send(Ok(answer)).await;
                drop(slot);
            });
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// Serves one write of a stream and makes its answer.
async fn serve_one(
    service: &StoreService,
    metadata: &tonic::metadata::MetadataMap,
    write: pb::StreamedWrite,
    received: Instant,
) -> pb::StreamedWriteAnswer {
    let tag = write.tag;
    let Some(req) = write.write else {
        return failed(tag, &Status::invalid_argument("field write: missing"));
    };
    let default = service.write_timeout();
    let timeout = match write.timeout_ms {
        0 => default,
        ms => Duration::from_millis(u64::from(ms)).min(default.max(MAX_WRITE_TIMEOUT)),
    };
    match service.write_one(metadata, req, timeout, received).await {
        Ok(response) => {
            let leader_hint = api_metadata::leader_hint(response.metadata())
                .unwrap_or_default()
                .to_string();
            pb::StreamedWriteAnswer {
                tag,
                outcome: Some(pb::streamed_write_answer::Outcome::Written(
                    response.into_inner(),
                )),
                leader_hint,
            }
        }
        Err(status) => failed(tag, &status),
    }
}

fn failed(tag: u64, status: &Status) -> pb::StreamedWriteAnswer {
    pb::StreamedWriteAnswer {
        tag,
        outcome: Some(pb::streamed_write_answer::Outcome::Failed(
            pb::WriteFailure::from_status(status),
        )),
        leader_hint: String::new(),
    }
}
