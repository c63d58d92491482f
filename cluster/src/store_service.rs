//! The `Store` service: writes (forwarded to the leader from a follower) and queries at the
//! consistency each asks for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qastore_exchange::query::{BarSource, Page, PageRequest, Period, Queries, TimeRange};
use qastore_exchange::{Ack, EncodedWrite, Response as Applied};
use qastore_lsm::Engine;
use qastore_proto::api_metadata;
use qastore_proto::v1 as pb;
use qastore_proto::v1::store_server::Store;
use qastore_raft::write_stages::{self, Stage};
use qastore_raft::Admitted;
use tonic::{Request, Response, Status};

use crate::access::Caller;
use crate::convert::bars::{bars_page, BarQuery};
use crate::convert::records as conv;
use crate::deadline::call_timeout;
use crate::error::ApiError;
use crate::forward::{forward, route, Route};
use crate::metrics;
use crate::node::Node;
use crate::read;
use crate::write_stream;

/// How often a read that waits checks that this node is still a member.
const MEMBERSHIP_RECHECK: Duration = Duration::from_millis(100);

/// The `Store` service of one node.
#[derive(Debug, Clone)]
pub struct StoreService {
    node: Arc<Node>,
}

impl StoreService {
    /// The service of `node`.
    pub fn new(node: Arc<Node>) -> Self {
        StoreService { node }
    }

    /// Waits for the read's consistency, then runs `query` on the engine off the runtime.
    async fn read<T, F>(
        &self,
        md: &tonic::metadata::MetadataMap,
        options: Option<&pb::ReadOptions>,
        query: F,
    ) -> Result<(T, pb::ServedBy), ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
    {
        self.node.check_serving()?;
        self.node.check_member()?;
        let timeout = call_timeout(md, self.node.read_timeout());
        let raft = &self.node.raft;
        // A read waiting on the leader or on its own apply ends as soon as the node learns it
        // was removed: the index it waits for would never come.
        let prepared = read::prepare(raft, options, timeout);
        tokio::pin!(prepared);
        loop {
            tokio::select! {
                r = &mut prepared => {
                    r?;
                    break;
                }
                _ = tokio::time::sleep(MEMBERSHIP_RECHECK) => self.node.check_member()?,
            }
        }
        let from = raft.applied_index();
        let engine = raft.engine().map_err(ApiError::from)?;
        let out = tokio::task::spawn_blocking(move || query(&engine))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
        Ok((
            out,
            pb::ServedBy {
                node_id: raft.id(),
                // The entry being applied may already show in the engine.
                applied_index: raft.visible_index(),
                from_applied_index: from,
            },
        ))
    }

    /// How long a write may take when its caller sets no deadline.
    pub(crate) fn write_timeout(&self) -> Duration {
        self.node.write_timeout()
    }

    /// Serves one write, from a unary call or a write stream: forwards it to the leader, or
    /// admits, proposes and applies it here. `metadata` is the caller's.
    pub(crate) async fn write_one(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        req: pb::WriteRequest,
        timeout: Duration,
        received: Instant,
    ) -> Answer<pb::WriteResponse> {
        let forwarded_by = metadata
            .get(api_metadata::FORWARDED)
            .map(|v| v.to_str().ok().and_then(|v| v.parse::<u64>().ok()));
        let forwarded = forwarded_by.is_some();
        self.node.check_serving()?;
        self.node.check_member()?;
        if let Some(from) = forwarded_by {
            let members = self.node.raft.status().nodes;
            if !from.is_some_and(|id| members.contains_key(&id)) {
                return Err(ApiError::NotMember(format!(
                    "the write was forwarded by node {}, which is not a member of this cluster; nothing was written",
                    from.map_or("?".into(), |id| id.to_string())
                ))
                .into());
            }
        }
        // Route before looking inside the request: the leader converts and validates it once.
        match route(&self.node, forwarded)? {
            Route::Forward(leader_api) => {
                return timed_forward(&self.node, metadata, req, &leader_api, timeout).await;
            }
            Route::Here => {}
        }
        // Admit before converting: a node without room refuses at once.
        let admitted = self
            .node
            .raft
            .admit(self.node.quota.usage())
            .map_err(ApiError::from)?;
        let records = req.records.len();
        // Leadership may move while the write is proposed: keep the request as it came to
        // pass it on to the new leader.
        let may_forward = self.node.config.forward_writes && !forwarded;
        let original = may_forward.then(|| req.clone());
        match (
            self.write_here(admitted, req, timeout, received).await,
            original,
        ) {
            (
                Err(ApiError::NotLeader {
                    leader_api: Some(api),
                    ..
                }),
                Some(req),
            ) => timed_forward(&self.node, metadata, req, &api, timeout).await,
            (Ok(resp), _) => {
                metrics::write_done(records);
                Ok(Response::new(resp))
            }
            (Err(e), _) => {
                metrics::proposal_failed();
                Err(Status::from(e))
            }
        }
    }

    /// Converts and proposes an admitted write on this node, the leader.
    async fn write_here(
        &self,
        admitted: Admitted,
        req: pb::WriteRequest,
        timeout: Duration,
        received: Instant,
    ) -> Result<pb::WriteResponse, ApiError> {
        let ack = match pb::AckLevel::try_from(req.ack) {
            Ok(pb::AckLevel::Unspecified | pb::AckLevel::Quorum) => Ack::Quorum,
            Ok(pb::AckLevel::All) => Ack::All,
            Err(_) => {
                return Err(ApiError::InvalidArgument(format!(
                    "field ack: unknown value {}",
                    req.ack
                )))
            }
        };
        let records = conv::records_from_pb(req.records)?;
        let count = records.len();
        let request_id = req.request_id;
        let cmd = EncodedWrite::new(&req.client_id, request_id, ack, records)
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let out = self
            .node
            .writes
            .write(admitted, cmd, count, timeout, received)
            .await?;
        if out.all_acked == Some(false) {
            return Err(ApiError::NotAllAcked {
                log_index: out.log_index,
            });
        }
        let leader_id = self.node.raft.id();
        match out.response {
            Applied::Written { outcomes } => Ok(pb::WriteResponse {
                log_index: out.log_index,
                results: outcomes.iter().map(conv::outcome_to_pb).collect(),
                duplicate: false,
                leader_id,
            }),
            Applied::Duplicate {
                original_index,
                outcomes,
            } => Ok(pb::WriteResponse {
                log_index: original_index,
                results: outcomes.iter().map(conv::outcome_to_pb).collect(),
                duplicate: true,
                leader_id,
            }),
            Applied::RequestIdReused { original_index } => Err(ApiError::AlreadyExists(format!(
                "field request_id: {request_id} was used at log index {original_index} with another payload; nothing was written"
            ))),
            Applied::Refused { reason } => Err(ApiError::InvalidArgument(reason)),
            other => Err(ApiError::Internal(format!(
                "unexpected answer to a write: {other:?}"
            ))),
        }
    }
}

/// Passes a write on to the leader at `leader_api`, timing the call as the `forward` stage.
async fn timed_forward(
    node: &Node,
    metadata: &tonic::metadata::MetadataMap,
    req: pb::WriteRequest,
    leader_api: &str,
    timeout: Duration,
) -> Answer<pb::WriteResponse> {
    let started = Instant::now();
    let answer = forward(node, metadata, req, leader_api, timeout).await;
    write_stages::record(Stage::Forward, started.elapsed());
    answer
}

fn need(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::InvalidArgument(format!(
            "field {field}: is empty"
        )));
    }
    Ok(())
}

fn time_range(r: Option<pb::TimeRange>) -> TimeRange {
    match r {
        None => TimeRange::all(),
        Some(r) => TimeRange::new(r.from_ns, if r.to_ns == 0 { i64::MAX } else { r.to_ns }),
    }
}

fn page(limit: u32, token: bytes::Bytes) -> PageRequest {
    PageRequest {
        limit: limit as usize,
        token: (!token.is_empty()).then_some(token),
    }
}

fn next_token<T>(p: &Page<T>) -> bytes::Bytes {
    p.next.clone().unwrap_or_default()
}

fn order_view(v: &qastore_exchange::query::OrderView) -> pb::OrderView {
    pb::OrderView {
        state: Some(conv::order_state_to_pb(&v.state)),
        history: v.history.iter().map(conv::journal_to_pb).collect(),
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Store for StoreService {
    async fn write(&self, request: Request<pb::WriteRequest>) -> Answer<pb::WriteResponse> {
        let received = Instant::now();
        let timeout = call_timeout(request.metadata(), self.node.write_timeout());
        let (metadata, _, req) = request.into_parts();
        self.write_one(&metadata, req, timeout, received).await
    }

    type WriteStreamStream = write_stream::Answers;

    async fn write_stream(
        &self,
        request: Request<tonic::Streaming<pb::StreamedWrite>>,
    ) -> Answer<Self::WriteStreamStream> {
        self.node.check_serving()?;
        self.node.check_member()?;
        Ok(Response::new(write_stream::serve(self.clone(), request)))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Answer<pb::GetOrderResponse> {
        let (md, ext, req) = request.into_parts();
        need("user_id", &req.user_id)?;
        let (scope, who) = Caller::scope_of(&ext);
        scope.check_user_read("Store/GetOrder", &who, &req.user_id)?;
        need("order_id", &req.order_id)?;
        let (order, served_by) = self
            .read(&md, req.read.as_ref(), move |engine| {
                let q = Queries::new(engine);
                let Some(state) = q.order(&req.user_id, &req.order_id)? else {
                    return Ok(None);
                };
                let history = if req.with_history {
                    q.order_history(&req.user_id, &req.order_id)?
                } else {
                    Vec::new()
                };
                Ok(Some(order_view(&qastore_exchange::query::OrderView {
                    state,
                    history,
                })))
            })
            .await?;
        Ok(Response::new(pb::GetOrderResponse {
            order,
            served_by: Some(served_by),
        }))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Answer<pb::ListOrdersResponse> {
        let (md, ext, req) = request.into_parts();
        need("user_id", &req.user_id)?;
        let (scope, who) = Caller::scope_of(&ext);
        scope.check_user_read("Store/ListOrders", &who, &req.user_id)?;
        let (orders, served_by) = self
            .read(&md, req.read.as_ref(), move |engine| {
                let views =
                    Queries::new(engine).orders(&req.user_id, req.only_alive, req.with_history)?;
                Ok(views.iter().map(order_view).collect())
            })
            .await?;
        Ok(Response::new(pb::ListOrdersResponse {
            orders,
            served_by: Some(served_by),
        }))
    }

    async fn get_accounts(
        &self,
        request: Request<pb::GetAccountsRequest>,
    ) -> Answer<pb::GetAccountsResponse> {
        let (md, ext, req) = request.into_parts();
        need("user_id", &req.user_id)?;
        let (scope, who) = Caller::scope_of(&ext);
        scope.check_user_read("Store/GetAccounts", &who, &req.user_id)?;
        let (accounts, served_by) = self
            .read(&md, req.read.as_ref(), move |engine| {
                let q = Queries::new(engine);
                let found = if req.currency.is_empty() {
                    q.accounts(&req.user_id)?
                } else {
                    q.account(&req.user_id, &req.currency)?
                        .into_iter()
                        .collect()
                };
                Ok(found.iter().map(conv::account_to_pb).collect())
            })
            .await?;
        Ok(Response::new(pb::GetAccountsResponse {
            accounts,
            served_by: Some(served_by),
        }))
    }

    async fn get_positions(
        &self,
        request: Request<pb::GetPositionsRequest>,
    ) -> Answer<pb::GetPositionsResponse> {
        let (md, ext, req) = request.into_parts();
        need("user_id", &req.user_id)?;
        let (scope, who) = Caller::scope_of(&ext);
        scope.check_user_read("Store/GetPositions", &who, &req.user_id)?;
        let (positions, served_by) = self
            .read(&md, req.read.as_ref(), move |engine| {
                let found = Queries::new(engine).positions(&req.user_id)?;
                Ok(found.iter().map(conv::position_to_pb).collect())
            })
            .await?;
        Ok(Response::new(pb::GetPositionsResponse {
            positions,
            served_by: Some(served_by),
        }))
    }

    async fn list_trades(
        &self,
        request: Request<pb::ListTradesRequest>,
    ) -> Answer<pb::ListTradesResponse> {
        let (md, ext, req) = request.into_parts();
        let Some(of) = req.of.clone() else {
            return Err(
                ApiError::InvalidArgument("field of: set instrument_id or user_id".into()).into(),
            );
        };
        let (scope, who) = Caller::scope_of(&ext);
        match &of {
            pb::list_trades_request::Of::InstrumentId(i) => {
                scope.check_instrument_read("Store/ListTrades", &who, i, true)?
            }
            pb::list_trades_request::Of::UserId(u) => {
                scope.check_user_read("Store/ListTrades", &who, u)?
            }
        }
        let range = time_range(req.range);
        let page = page(req.limit, req.page_token.clone());
        let ((trades, next), served_by) = self
            .read(&md, req.read.as_ref(), move |engine| {
                let q = Queries::new(engine);
                let p = match &of {
                    pb::list_trades_request::Of::InstrumentId(i) => {
                        need("instrument_id", i)?;
                        q.trades(i, range, &page)?
                    }
                    pb::list_trades_request::Of::UserId(u) => {
                        need("user_id", u)?;
                        q.user_trades(u, range, &page)?
                    }
                };
                Ok((
                    p.items.iter().map(conv::trade_to_pb).collect(),
                    next_token(&p),
                ))
            })
            .await?;
        Ok(Response::new(pb::ListTradesResponse {
            trades,
            next_page_token: next,
            served_by: Some(served_by),
        }))
    }

    async fn list_ticks(
        &self,
        request: Request<pb::ListTicksRequest>,
    ) -> Answer<pb::ListTicksResponse> {
        let (md, ext, req) = request.into_parts();
        need("instrument_id", &req.instrument_id)?;
        let (scope, who) = Caller::scope_of(&ext);
        scope.check_instrument_read("Store/ListTicks", &who, &req.instrument_id, false)?;
        let range = time_range(req.range);
        let page = page(req.limit, req.page_token.clone());
        let ((ticks, next), served_by) = self
            .read(&md, req.read.as_ref(), move |engine| {
                let p = Queries::new(engine).ticks(&req.instrument_id, range, &page)?;
                Ok((
                    p.items.iter().map(conv::tick_to_pb).collect(),
                    next_token(&p),
                ))
            })
            .await?;
        Ok(Response::new(pb::ListTicksResponse {
            ticks,
            next_page_token: next,
            served_by: Some(served_by),
        }))
    }

    async fn get_latest_book(
        &self,
        request: Request<pb::GetLatestBookRequest>,
    ) -> Answer<pb::GetLatestBookResponse> {
        let (md, ext, req) = request.into_parts();
        need("instrument_id", &req.instrument_id)?;
        let (scope, who) = Caller::scope_of(&ext);
        scope.check_instrument_read("Store/GetLatestBook", &who, &req.instrument_id, false)?;
        let (book, served_by) = self
            .read(&md, req.read.as_ref(), move |engine| {
                let b = Queries::new(engine).latest_book(&req.instrument_id)?;
                Ok(b.as_ref().map(conv::book_to_pb))
            })
            .await?;
        Ok(Response::new(pb::GetLatestBookResponse {
            book,
            served_by: Some(served_by),
        }))
    }

    async fn get_bars(&self, request: Request<pb::GetBarsRequest>) -> Answer<pb::GetBarsResponse> {
        let (md, ext, req) = request.into_parts();
        need("instrument_id", &req.instrument_id)?;
        let (scope, who) = Caller::scope_of(&ext);
        scope.check_instrument_read("Store/GetBars", &who, &req.instrument_id, false)?;
        let source = match pb::BarSource::try_from(req.source) {
            Ok(pb::BarSource::Ticks) => BarSource::Ticks,
            Ok(pb::BarSource::Trades) => BarSource::Trades,
            _ => {
                return Err(ApiError::InvalidArgument(format!(
                    "field source: must be BAR_SOURCE_TICKS or BAR_SOURCE_TRADES, not {}",
                    req.source
                ))
                .into())
            }
        };
        let period = match pb::BarPeriod::try_from(req.period) {
            Ok(pb::BarPeriod::BarPeriod1s) => Period::Second1,
            Ok(pb::BarPeriod::BarPeriod1m) => Period::Minute1,
            Ok(pb::BarPeriod::BarPeriod5m) => Period::Minute5,
            Ok(pb::BarPeriod::BarPeriod15m) => Period::Minute15,
            Ok(pb::BarPeriod::BarPeriod30m) => Period::Minute30,
            Ok(pb::BarPeriod::BarPeriod1h) => Period::Hour1,
            Ok(pb::BarPeriod::BarPeriod1d) => Period::Day1,
            _ => {
                return Err(ApiError::InvalidArgument(format!(
                    "field period: must be one of the BAR_PERIOD_ values, not {}",
                    req.period
                ))
                .into())
            }
        };
        let query = BarQuery {
            instrument: req.instrument_id.clone(),
            source,
            period,
            wire_kind: (req.source, req.period),
            range: time_range(req.range),
        };
        let page = page(req.limit, req.page_token.clone());
        let calendar = self.node.raft.app().calendar();
        let ((bars, next), served_by) = self
            .read(&md, req.read.as_ref(), move |engine| {
                bars_page(engine, &calendar, &query, &page)
            })
            .await?;
        Ok(Response::new(pb::GetBarsResponse {
            bars,
            served_by: Some(served_by),
            next_page_token: next,
        }))
    }
}
