//! A layer around the gRPC services that records every call's latency by method
//! (`qastore_rpc_seconds{method="/qastore.v1.Store/Write"}`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::http;
use tower::Service;

/// Wraps a service so each call's latency is recorded.
#[derive(Debug, Clone)]
pub struct Timed<S> {
    inner: S,
}

impl<S> Timed<S> {
    /// Times calls to `inner`.
    pub fn new(inner: S) -> Self {
        Timed { inner }
    }
}

impl<S, B> Service<http::Request<B>> for Timed<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().to_string();
        let started = Instant::now();
        let call = self.inner.call(req);
        Box::pin(async move {
            let result = call.await;
            metrics::histogram!("qastore_rpc_seconds", "method" => method)
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}
