//! The client's side of subscriptions: opening one, and the durable consumer calls. Those go
//! to any node, in turn, retried through failures for the client's `retry_for` (a follower
//! forwards changes to the leader).

use std::future::Future;
use std::time::Instant;

use qastore_proto::v1 as pb;

use super::options::SubscribeOptions;
use super::subscription::Subscription;
use crate::client::Client;
use crate::error::ClientError;
use crate::retry::Backoff;

impl Client {
    /// Opens a subscription (see [`Subscription`]). Nothing is sent until it is first polled.
    pub fn subscribe(&self, options: SubscribeOptions) -> Subscription {
        Subscription::start(
            self.connector().clone(),
            self.endpoints().to_vec(),
            self.options().call_timeout,
            options,
        )
    }

    /// Creates the durable consumer `name`, its cursor at `cursor` (a stream for it starts
    /// right after). Creating one that exists changes nothing and answers it as it is.
    pub async fn create_consumer(
        &self,
        name: &str,
        cursor: Option<pb::Position>,
    ) -> Result<pb::ConsumerInfo, ClientError> {
        let req = pb::CreateConsumerRequest {
            name: name.into(),
            cursor,
        };
        self.any_node(|addr| {
            let req = req.clone();
            async move {
                let mut feed = self.feed_at(&addr)?;
                Ok(feed.create_consumer(self.request(req)).await?.into_inner())
            }
        })
        .await
    }

    /// Acknowledges every event of `consumer` up to and including `position`; answers the
    /// consumer's cursor after it.
    pub async fn ack(
        &self,
        consumer: &str,
        position: pb::Position,
    ) -> Result<pb::Position, ClientError> {
        let req = pb::AckRequest {
            consumer: consumer.into(),
            position: Some(position),
        };
        self.any_node(|addr| {
            let req = req.clone();
            async move {
                let mut feed = self.feed_at(&addr)?;
                let r = feed.ack(self.request(req)).await?.into_inner();
                Ok(r.cursor.unwrap_or_default())
            }
        })
        .await
    }

    /// Every durable consumer.
    pub async fn list_consumers(&self) -> Result<Vec<pb::ConsumerInfo>, ClientError> {
        self.any_node(|addr| async move {
            let mut feed = self.feed_at(&addr)?;
            let r = feed
                .list_consumers(self.request(pb::ListConsumersRequest {}))
                .await?;
            Ok(r.into_inner().consumers)
        })
        .await
    }

    /// The durable consumer `name` (NOT_FOUND if there is none).
    pub async fn consumer(&self, name: &str) -> Result<pb::ConsumerInfo, ClientError> {
        self.any_node(|addr| async move {
            let mut feed = self.feed_at(&addr)?;
            let req = pb::GetConsumerRequest { name: name.into() };
            Ok(feed.get_consumer(self.request(req)).await?.into_inner())
        })
        .await
    }

    /// Deletes the durable consumer `name`; answers whether there was one.
    pub async fn delete_consumer(&self, name: &str) -> Result<bool, ClientError> {
        self.any_node(|addr| async move {
            let mut feed = self.feed_at(&addr)?;
            let req = pb::DeleteConsumerRequest { name: name.into() };
            Ok(feed
                .delete_consumer(self.request(req))
                .await?
                .into_inner()
                .deleted)
        })
        .await
    }

    /// Runs a call any node can answer on the endpoints in turn, retrying retryable failures
    /// until the client's `retry_for` runs out.
    async fn any_node<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let started = Instant::now();
        let mut backoff = Backoff::new();
        loop {
            let addr = self.next_endpoint();
            let err = match call(addr.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_retryable() || started.elapsed() >= self.options().retry_for {
                return Err(err);
            }
            let wait = backoff.next(err.retry_after());
            tracing::debug!(node = %addr, error = %err, ?wait, "retrying on another node");
            tokio::time::sleep(wait).await;
        }
    }
}
