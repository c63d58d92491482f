//! `ctl` queries: orders, accounts, positions, ticks, trades and bars, from any node at the
//! consistency asked for.

use clap::Args;
use qastore_client::Client;
use qastore_client::Connection;
use qastore_proto::v1 as pb;
use qastore_proto::v1::store_client::StoreClient;
use serde_json::{json, Value};

use super::time::{format_time, parse_time, TimeArg};
use super::{failed_at, CtlResult, ReadArgs};
use crate::output::{print, Format, Table};

/// A time range and a page.
#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    /// Start (inclusive): RFC 3339 (2024-12-02T09:30:00+08:00), a date (2024-12-02, midnight
    /// UTC) or epoch nanoseconds. Default: from the first.
    #[arg(long, value_parser = parse_time)]
    from: Option<TimeArg>,
    /// End (exclusive), in the same forms. Default: up to the last.
    #[arg(long, value_parser = parse_time)]
    to: Option<TimeArg>,
    /// At most this many (1 to 10000); the answer says when there are more.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Go on where an earlier answer stopped (the token it printed).
    #[arg(long, value_parser = parse_token)]
    page_token: Option<PageToken>,
}

/// A page token given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken(Vec<u8>);

impl RangeArgs {
    fn range(&self) -> Option<pb::TimeRange> {
        Some(pb::TimeRange {
            from_ns: self.from.map_or(i64::MIN, |t| t.0),
            // 0 is "no end" on the wire.
            to_ns: self.to.map_or(0, |t| t.0),
        })
    }

    fn token(&self) -> bytes::Bytes {
        self.page_token
            .clone()
            .map(|t| t.0.into())
            .unwrap_or_default()
    }
}

/// A page token as printed: lowercase hex.
fn token_text(t: &[u8]) -> String {
    t.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_token(s: &str) -> Result<PageToken, String> {
    let bad = || format!("{s:?} is not a page token (as an earlier answer printed it)");
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(bad)
        })
        .collect::<Result<_, _>>()
        .map(PageToken)
}

/// The page's continuation for JSON (`null` when none).
fn next_json(t: &[u8]) -> Value {
    if t.is_empty() {
        Value::Null
    } else {
        Value::String(token_text(t))
    }
}

/// The line under a table that was cut at the page's end.
fn more_line(t: &[u8]) -> String {
    if t.is_empty() {
        String::new()
    } else {
        format!("(more: add --page-token {})\n", token_text(t))
    }
}

/// The store API of the node to read from, and its address (for errors).
fn store(client: &Client, read: &ReadArgs) -> Result<(StoreClient<Connection>, String), String> {
    let addr = read
        .node
        .clone()
        .unwrap_or_else(|| client.endpoints()[0].clone());
    let store = client.store_at(&addr).map_err(|e| e.to_string())?;
    Ok((store, addr))
}

fn json_of<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn served(s: &Option<pb::ServedBy>) -> String {
    s.as_ref().map_or(String::new(), |s| {
        format!(
            "(served by node {} at applied index {})\n",
            s.node_id, s.applied_index
        )
    })
}

fn orders_table(orders: &[pb::OrderView]) -> String {
    let mut t = Table::new(&[
        "ORDER",
        "INSTRUMENT",
        "DIR",
        "OFFSET",
        "PRICE",
        "VOLUME",
        "LEFT",
        "STATUS",
        "UPDATES",
    ]);
    for v in orders {
        let Some(o) = v.state.as_ref().and_then(|s| s.order.as_ref()) else {
            continue;
        };
        t.row(vec![
            o.order_id.clone(),
            o.instrument_id.clone(),
            o.direction()
                .as_str_name()
                .trim_start_matches("DIRECTION_")
                .into(),
            o.offset()
                .as_str_name()
                .trim_start_matches("OFFSET_")
                .into(),
            o.limit_price.to_string(),
            o.volume_orign.to_string(),
            o.volume_left.to_string(),
            o.status()
                .as_str_name()
                .trim_start_matches("ORDER_STATUS_")
                .into(),
            v.state.as_ref().map_or(0, |s| s.updates).to_string(),
        ]);
    }
    t.render()
}

/// `ctl order`.
pub async fn order(
    client: &Client,
    user: &str,
    order: &str,
    read: &ReadArgs,
    out: Format,
) -> CtlResult {
    let (mut store, addr) = store(client, read)?;
    let r = store
        .get_order(client.request(pb::GetOrderRequest {
            user_id: user.into(),
            order_id: order.into(),
            with_history: true,
            read: Some(read.options()),
        }))
        .await
        .map_err(failed_at(&addr))?
        .into_inner();
    let Some(view) = &r.order else {
        return Err(format!("no order {order:?} of user {user:?}"));
    };
    print(
        out,
        &json!({"order": json_of(view), "served_by": json_of(&r.served_by)}),
        || {
            let mut text = orders_table(std::slice::from_ref(view));
            let mut t = Table::new(&["LOG INDEX", "ORDINAL", "RECORD", "RESULT"]);
            for e in &view.history {
                let kind = e
                    .record
                    .as_ref()
                    .and_then(|r| serde_json::to_value(r).ok())
                    .and_then(|v| v.as_object().and_then(|o| o.keys().next().cloned()))
                    .unwrap_or_default();
                t.row(vec![
                    e.log_index.to_string(),
                    e.ordinal.to_string(),
                    kind,
                    e.result
                        .map(|r| {
                            r.outcome()
                                .as_str_name()
                                .trim_start_matches("OUTCOME_")
                                .to_string()
                        })
                        .unwrap_or_default(),
                ]);
            }
            text.push('\n');
            text.push_str(&t.render());
            text.push_str(&served(&r.served_by));
            text
        },
    );
    Ok(())
}

/// `ctl orders`.
pub async fn orders(
    client: &Client,
    user: &str,
    alive: bool,
    read: &ReadArgs,
    out: Format,
) -> CtlResult {
    let (mut store, addr) = store(client, read)?;
    let r = store
        .list_orders(client.request(pb::ListOrdersRequest {
            user_id: user.into(),
            only_alive: alive,
            with_history: false,
            read: Some(read.options()),
        }))
        .await
        .map_err(failed_at(&addr))?
        .into_inner();
    print(
        out,
        &json!({"orders": json_of(&r.orders), "served_by": json_of(&r.served_by)}),
        || format!("{}{}", orders_table(&r.orders), served(&r.served_by)),
    );
    Ok(())
}

/// `ctl account`.
pub async fn account(
    client: &Client,
    user: &str,
    currency: &str,
    read: &ReadArgs,
    out: Format,
) -> CtlResult {
    let (mut store, addr) = store(client, read)?;
    let r = store
        .get_accounts(client.request(pb::GetAccountsRequest {
            user_id: user.into(),
            currency: currency.into(),
            read: Some(read.options()),
        }))
        .await
        .map_err(failed_at(&addr))?
        .into_inner();
    print(
        out,
        &json!({"accounts": json_of(&r.accounts), "served_by": json_of(&r.served_by)}),
        || {
            let mut t = Table::new(&[
                "CURRENCY",
                "BALANCE",
                "AVAILABLE",
                "MARGIN",
                "FLOAT P/L",
                "RISK",
            ]);
            for a in &r.accounts {
                t.row(vec![
                    a.currency.clone(),
                    format!("{:.2}", a.balance),
                    format!("{:.2}", a.available),
                    format!("{:.2}", a.margin),
                    format!("{:.2}", a.float_profit),
                    format!("{:.4}", a.risk_ratio),
                ]);
            }
            format!("{}{}", t.render(), served(&r.served_by))
        },
    );
    Ok(())
}

/// `ctl positions`.
pub async fn positions(client: &Client, user: &str, read: &ReadArgs, out: Format) -> CtlResult {
    let (mut store, addr) = store(client, read)?;
    let r = store
        .get_positions(client.request(pb::GetPositionsRequest {
            user_id: user.into(),
            read: Some(read.options()),
        }))
        .await
        .map_err(failed_at(&addr))?
        .into_inner();
    print(
        out,
        &json!({"positions": json_of(&r.positions), "served_by": json_of(&r.served_by)}),
        || {
            let mut t = Table::new(&[
                "INSTRUMENT",
                "LONG TODAY",
                "LONG HIS",
                "SHORT TODAY",
                "SHORT HIS",
                "MARGIN",
            ]);
            for p in &r.positions {
                t.row(vec![
                    p.instrument_id.clone(),
                    p.volume_long_today.to_string(),
                    p.volume_long_his.to_string(),
                    p.volume_short_today.to_string(),
                    p.volume_short_his.to_string(),
                    format!("{:.2}", p.margin_long + p.margin_short),
                ]);
            }
            format!("{}{}", t.render(), served(&r.served_by))
        },
    );
    Ok(())
}

/// `ctl ticks`.
pub async fn ticks(
    client: &Client,
    instrument: &str,
    range: &RangeArgs,
    read: &ReadArgs,
    out: Format,
) -> CtlResult {
    let (mut store, addr) = store(client, read)?;
    let r = store
        .list_ticks(client.request(pb::ListTicksRequest {
            instrument_id: instrument.into(),
            range: range.range(),
            limit: range.limit,
            page_token: range.token(),
            read: Some(read.options()),
        }))
        .await
        .map_err(failed_at(&addr))?
        .into_inner();
    let ticks: Vec<Value> = r
        .ticks
        .iter()
        .map(|t| json!({
            "datetime": t.datetime, "sequence": t.sequence, "trading_day": t.trading_day,
            "last_price": t.last_price, "volume": t.volume, "amount": t.amount,
            "open_interest": t.open_interest, "bid_price": t.bid_price, "ask_price": t.ask_price,
        }))
        .collect();
    print(
        out,
        &json!({"ticks": ticks, "more": !r.next_page_token.is_empty(), "next_page_token": next_json(&r.next_page_token), "served_by": json_of(&r.served_by)}),
        || {
            let mut t = Table::new(&["DATETIME", "DAY", "LAST", "VOLUME", "BID1", "ASK1", "OI"]);
            for k in &r.ticks {
                t.row(vec![
                    format_time(k.datetime),
                    k.trading_day.to_string(),
                    k.last_price.to_string(),
                    k.volume.to_string(),
                    k.bid_price.first().map_or("-".into(), |p| p.to_string()),
                    k.ask_price.first().map_or("-".into(), |p| p.to_string()),
                    k.open_interest.to_string(),
                ]);
            }
            format!(
                "{}{}{}",
                t.render(),
                more_line(&r.next_page_token),
                served(&r.served_by)
            )
        },
    );
    Ok(())
}

/// `ctl trades`.
pub async fn trades(
    client: &Client,
    instrument: Option<String>,
    user: Option<String>,
    range: &RangeArgs,
    read: &ReadArgs,
    out: Format,
) -> CtlResult {
    let of = match (instrument, user) {
        (Some(i), None) => pb::list_trades_request::Of::InstrumentId(i),
        (None, Some(u)) => pb::list_trades_request::Of::UserId(u),
        _ => return Err("give --instrument or --user".into()),
    };
    let (mut store, addr) = store(client, read)?;
    let r = store
        .list_trades(client.request(pb::ListTradesRequest {
            of: Some(of),
            range: range.range(),
            limit: range.limit,
            page_token: range.token(),
            read: Some(read.options()),
        }))
        .await
        .map_err(failed_at(&addr))?
        .into_inner();
    print(
        out,
        &json!({"trades": json_of(&r.trades), "more": !r.next_page_token.is_empty(), "next_page_token": next_json(&r.next_page_token), "served_by": json_of(&r.served_by)}),
        || {
            let mut t = Table::new(&[
                "TIME",
                "USER",
                "TRADE",
                "ORDER",
                "INSTRUMENT",
                "DIR",
                "PRICE",
                "VOLUME",
            ]);
            for x in &r.trades {
                t.row(vec![
                    format_time(x.trade_date_time),
                    x.user_id.clone(),
                    x.trade_id.clone(),
                    x.order_id.clone(),
                    x.instrument_id.clone(),
                    x.direction()
                        .as_str_name()
                        .trim_start_matches("DIRECTION_")
                        .into(),
                    x.price.to_string(),
                    x.volume.to_string(),
                ]);
            }
            format!(
                "{}{}{}",
                t.render(),
                more_line(&r.next_page_token),
                served(&r.served_by)
            )
        },
    );
    Ok(())
}

/// `ctl bars`.
pub async fn bars(
    client: &Client,
    instrument: &str,
    period: &str,
    source: &str,
    range: &RangeArgs,
    read: &ReadArgs,
    out: Format,
) -> CtlResult {
    let period = match period {
        "1s" => pb::BarPeriod::BarPeriod1s,
        "1m" => pb::BarPeriod::BarPeriod1m,
        "5m" => pb::BarPeriod::BarPeriod5m,
        "15m" => pb::BarPeriod::BarPeriod15m,
        "30m" => pb::BarPeriod::BarPeriod30m,
        "1h" => pb::BarPeriod::BarPeriod1h,
        "1d" => pb::BarPeriod::BarPeriod1d,
        other => {
            return Err(format!(
                "--period {other:?}: use 1s, 1m, 5m, 15m, 30m, 1h or 1d"
            ))
        }
    };
    let source = match source {
        "ticks" => pb::BarSource::Ticks,
        "trades" => pb::BarSource::Trades,
        other => return Err(format!("--source {other:?}: use ticks or trades")),
    };
    let (mut store, addr) = store(client, read)?;
    let r = store
        .get_bars(client.request(pb::GetBarsRequest {
            instrument_id: instrument.into(),
            source: source as i32,
            period: period as i32,
            range: range.range(),
            read: Some(read.options()),
            limit: range.limit,
            page_token: range.token(),
        }))
        .await
        .map_err(failed_at(&addr))?
        .into_inner();
    print(
        out,
        &json!({"bars": json_of(&r.bars), "more": !r.next_page_token.is_empty(), "next_page_token": next_json(&r.next_page_token), "served_by": json_of(&r.served_by)}),
        || {
            let mut t = Table::new(&[
                "START", "DAY", "OPEN", "HIGH", "LOW", "CLOSE", "VOLUME", "COUNT",
            ]);
            for b in &r.bars {
                t.row(vec![
                    format_time(b.start),
                    b.trading_day.to_string(),
                    b.open.to_string(),
                    b.high.to_string(),
                    b.low.to_string(),
                    b.close.to_string(),
                    b.volume.to_string(),
                    b.count.to_string(),
                ]);
            }
            format!(
                "{}{}{}",
                t.render(),
                more_line(&r.next_page_token),
                served(&r.served_by)
            )
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_print_and_read_back() {
        let t = vec![1u8, 0xab, 0, 0x7f];
        assert_eq!(token_text(&t), "01ab007f");
        assert_eq!(parse_token("01ab007f").unwrap(), PageToken(t));
        assert!(parse_token("01a").is_err());
        assert!(parse_token("zz").is_err());
        assert_eq!(more_line(&[]), "");
        assert_eq!(more_line(&[2]), "(more: add --page-token 02)\n");
    }
}
