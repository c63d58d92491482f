//! Exchange records applied and read back: every kind, parked updates, duplicates, paging, the
//! journal, and identical state on two engines given the same batches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use qastore_exchange::apply::{apply, Outcome};
use qastore_exchange::calendar::TradingCalendar;
use qastore_exchange::datagen::{ExchangeGen, GenConfig};
use qastore_exchange::keys;
use qastore_exchange::query::{PageRequest, Queries, TimeRange};
use qastore_exchange::record::{samples, OrderStatus, OrderUpdate, Record};
use qastore_exchange::{Error, InvalidArgument};
use qastore_lsm::vfs::SimVfs;
use qastore_lsm::{Engine, EngineConfig};

/// An engine whose levels are sized in proportion to its memtable.
fn engine(vfs: &SimVfs, dir: &str, memtable: usize) -> Engine {
    Engine::open(
        vfs.shared(),
        dir,
        EngineConfig {
            memtable_bytes: memtable,
            level1_bytes: 4 * memtable as u64,
            target_file_bytes: memtable as u64,
            ..EngineConfig::default()
        },
    )
    .unwrap()
}

fn update(status: OrderStatus, left: i64, msg: &str, time: i64) -> Record {
    Record::OrderUpdate(OrderUpdate {
        user_id: "u1001".into(),
        order_id: "o-20241202-0001".into(),
        status,
        volume_left: left,
        last_msg: msg.into(),
        time,
    })
}

#[test]
fn every_kind_applies_and_reads_back() {
    let vfs = SimVfs::new(1);
    let e = engine(&vfs, "/db", 64 << 20);
    let s = samples::records();
    let outcomes = apply(&e, &s, 1).unwrap();
    assert_eq!(
        outcomes,
        vec![
            Outcome::OrderInserted { merged_updates: 0 },
            Outcome::OrderUpdated,
            Outcome::TradeRecorded,
            Outcome::AccountReplaced,
            Outcome::PositionReplaced,
            Outcome::TickRecorded,
            Outcome::BookRecorded,
        ]
    );
    let q = Queries::new(&e);
    let order = q.order("u1001", "o-20241202-0001").unwrap().unwrap();
    assert_eq!(order.order.status, OrderStatus::Finished);
    assert_eq!(order.order.volume_left, 0);
    assert_eq!(order.last_msg, "全部成交");
    assert_eq!(order.updates, 1);
    let views = q.orders("u1001", false, true).unwrap();
    assert_eq!(views.len(), 1);
    let history: Vec<_> = views[0].history.iter().map(|h| h.record.kind()).collect();
    assert_eq!(history.len(), 3, "insert, update and fill: {history:?}");
    assert!(
        q.orders("u1001", true, false).unwrap().is_empty(),
        "finished orders are not alive"
    );
    assert_eq!(q.accounts("u1001").unwrap().len(), 1);
    assert!(q.account("u1001", "CNY").unwrap().is_some());
    assert_eq!(q.positions("u1001").unwrap().len(), 1);
    let all = TimeRange::all();
    assert_eq!(
        q.trades("IF2412", all, &PageRequest::default())
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        q.user_trades("u1001", all, &PageRequest::default())
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        q.ticks("IF2412", all, &PageRequest::default())
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(q.latest_book("IF2412").unwrap().is_some());
    assert!(q.latest_book("IF2501").unwrap().is_none());
    let journal = q.journal(1, 100).unwrap();
    assert_eq!(journal.len(), 7);
    assert_eq!(journal[5].outcome, Outcome::TickRecorded);
    assert_eq!((journal[6].log_index, journal[6].ordinal), (1, 6));
}

#[test]
fn updates_that_arrive_first_are_parked_and_merged() {
    let vfs = SimVfs::new(1);
    let e = engine(&vfs, "/db", 64 << 20);
    let insert = samples::records()[0].clone();
    let t = samples::SAMPLE_TIME;
    // Two updates before the order, in separate batches.
    assert_eq!(
        apply(&e, &[update(OrderStatus::Alive, 1, "部分成交", t + 1)], 1).unwrap(),
        vec![Outcome::UpdateParked]
    );
    assert_eq!(
        apply(
            &e,
            &[update(OrderStatus::Finished, 0, "全部成交", t + 2)],
            2
        )
        .unwrap(),
        vec![Outcome::UpdateParked]
    );
    let q = Queries::new(&e);
    assert!(q.order("u1001", "o-20241202-0001").unwrap().is_none());
    let marker = keys::parked_marker("u1001", "o-20241202-0001");
    assert!(
        e.get(&marker).unwrap().is_some(),
        "the order is marked as having parked updates"
    );
    // The order arrives with another update behind it in the same batch.
    let outcomes = apply(
        &e,
        &[
            insert.clone(),
            update(OrderStatus::Finished, 0, "late", t + 3),
        ],
        3,
    )
    .unwrap();
    assert_eq!(
        outcomes,
        vec![
            Outcome::OrderInserted { merged_updates: 2 },
            Outcome::OrderUpdated
        ]
    );
    let order = q.order("u1001", "o-20241202-0001").unwrap().unwrap();
    assert_eq!(
        (order.order.status, order.order.volume_left),
        (OrderStatus::Finished, 0)
    );
    assert_eq!((order.last_msg.as_str(), order.updates), ("late", 3));
    assert_eq!(
        e.scan_prefix(&keys::parked_for("u1001", "o-20241202-0001"))
            .count(),
        0,
        "parked updates are removed once merged"
    );
    assert!(e.get(&marker).unwrap().is_none(), "and so is the marker");
    assert_eq!(
        q.order_history("u1001", "o-20241202-0001").unwrap().len(),
        4
    );
    // A second insert of the same order changes nothing.
    assert_eq!(
        apply(&e, &[insert], 4).unwrap(),
        vec![Outcome::DuplicateOrder]
    );
    assert_eq!(q.order("u1001", "o-20241202-0001").unwrap().unwrap(), order);
}

#[test]
fn pages_resume_exactly_and_foreign_tokens_are_refused() {
    let vfs = SimVfs::new(1);
    let e = engine(&vfs, "/db", 256 << 10);
    let mut gen = ExchangeGen::new(
        GenConfig {
            instruments: 2,
            ..GenConfig::default()
        },
        TradingCalendar::builtin(),
    );
    for (i, b) in gen.trading_day(20241202).iter().enumerate() {
        apply(&e, b, i as u64 + 1).unwrap();
    }
    let q = Queries::new(&e);
    let range = TimeRange::all();
    let everything = q
        .ticks("IF2412", range, &PageRequest::first(10_000))
        .unwrap();
    assert_eq!(everything.items.len(), 10_000);
    let mut paged = Vec::new();
    let mut page = PageRequest::first(777);
    loop {
        let p = q.ticks("IF2412", range, &page).unwrap();
        paged.extend(p.items);
        match p.next {
            Some(token) => page.token = Some(token),
            None => break,
        }
    }
    assert_eq!(paged.len(), 28_800, "two ticks a second for four hours");
    assert_eq!(&paged[..10_000], &everything.items[..]);
    assert!(paged
        .windows(2)
        .all(|w| (w[0].datetime, w[0].sequence) < (w[1].datetime, w[1].sequence)));
    // A token of another instrument's query does not resume this one.
    let other = q.ticks("cu2501", range, &PageRequest::first(5)).unwrap();
    let foreign = PageRequest {
        limit: 5,
        token: other.next,
    };
    assert!(matches!(
        q.ticks("IF2412", range, &foreign),
        Err(Error::InvalidArgument(InvalidArgument::BadPageToken))
    ));
    let garbage = PageRequest {
        limit: 5,
        token: Some(Bytes::from_static(b"\x09nope")),
    };
    assert!(q.ticks("IF2412", range, &garbage).is_err());
    assert!(matches!(
        q.ticks("IF2412", range, &PageRequest::first(50_000)),
        Err(Error::InvalidArgument(InvalidArgument::PageTooLarge { .. }))
    ));
    assert!(matches!(
        q.ticks("IF2412", TimeRange::new(5, 5), &PageRequest::default()),
        Err(Error::InvalidArgument(InvalidArgument::BadTimeRange { .. }))
    ));
}

#[test]
fn the_same_batches_give_the_same_state_on_every_engine() {
    let vfs = SimVfs::new(1);
    let small = engine(&vfs, "/a", 128 << 10);
    let large = engine(&vfs, "/b", 64 << 20);
    let cfg = GenConfig {
        instruments: 2,
        order_rate: 0.2,
        ..GenConfig::default()
    };
    let mut gen = ExchangeGen::new(cfg, TradingCalendar::builtin());
    let batches = gen.trading_day(20241202);
    let mut parked = 0;
    for (i, b) in batches.iter().enumerate() {
        let a = apply(&small, b, i as u64 + 1).unwrap();
        let c = apply(&large, b, i as u64 + 1).unwrap();
        assert_eq!(a, c);
        parked += a.iter().filter(|o| **o == Outcome::UpdateParked).count();
    }
    assert!(parked > 0, "the generator reorders some updates");
    assert!(
        small.stats().flushes > 0,
        "the small engine's data is in tables"
    );
    assert_eq!(small.state_hash().unwrap(), large.state_hash().unwrap());
    // And after a restart that replays the unflushed tail.
    small.flush().unwrap();
    drop(small);
    let reopened = engine(&vfs, "/a", 128 << 10);
    assert_eq!(reopened.state_hash().unwrap(), large.state_hash().unwrap());
    // Every order got an outcome consistent with its history: none is left parked.
    let q = Queries::new(&large);
    for u in 1..=20 {
        let user = format!("u{u:04}");
        for v in q.orders(&user, false, true).unwrap() {
            assert!(!v.history.is_empty());
            assert_eq!(v.state.order.status, OrderStatus::Finished, "{:?}", v.state);
        }
    }
}

#[test]
fn retention_drops_updates_whose_order_never_came() {
    use qastore_exchange::olap::{retain, RetentionPolicy};
    use qastore_lsm::WriteBatch;
    let vfs = SimVfs::new(1);
    let e = engine(&vfs, "/db", 64 << 20);
    let t = samples::SAMPLE_TIME;
    apply(&e, &[update(OrderStatus::Alive, 1, "early", t + 1)], 1).unwrap();
    apply(&e, &[update(OrderStatus::Alive, 1, "later", t + 2)], 5).unwrap();
    let policy = |before| RetentionPolicy {
        drop_journal_before: Some(before),
        ..RetentionPolicy::default()
    };
    let marker = keys::parked_marker("u1001", "o-20241202-0001");
    let r = retain(&e, policy(3), 6, WriteBatch::new()).unwrap();
    assert_eq!(r.parked_removed, 1);
    assert!(
        e.get(&marker).unwrap().is_some(),
        "one parked update is left"
    );
    let r = retain(&e, policy(7), 7, WriteBatch::new()).unwrap();
    assert_eq!(r.parked_removed, 1);
    assert!(e.get(&marker).unwrap().is_none());
    let insert = samples::records()[0].clone();
    assert_eq!(
        apply(&e, &[insert], 8).unwrap(),
        vec![Outcome::OrderInserted { merged_updates: 0 }]
    );
}
