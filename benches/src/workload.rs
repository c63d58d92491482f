//! A realistic exchange workload for the demo and the bench: the storage crate's generator
//! (ticks, books, orders, fills, accounts, positions over the trading calendar), as API
//! records.

use qastore_cluster::convert::records::record_to_pb;
use qastore_proto::v1 as pb;
use qastore_storage::calendar::TradingCalendar;
use qastore_storage::datagen::{ExchangeGen, GenConfig};
use qastore_storage::record::Record;

/// The first trading day generated.
pub const FIRST_DAY: u32 = 20241202;

/// A stream of records, day after day, in the order the exchange would write them.
pub struct Workload {
    gen: ExchangeGen,
    day: u32,
    calendar: TradingCalendar,
    pending: std::vec::IntoIter<Record>,
}

impl Workload {
    /// A workload over `instruments` instruments and `users` users, deterministic for `seed`.
    pub fn new(seed: u64, instruments: usize, users: usize) -> Workload {
        let calendar = TradingCalendar::builtin();
        let gen = ExchangeGen::new(
            GenConfig {
                seed,
                instruments,
                users,
                order_rate: 0.2,
                ..GenConfig::default()
            },
            calendar.clone(),
        );
        Workload {
            gen,
            day: FIRST_DAY,
            calendar,
            pending: Vec::new().into_iter(),
        }
    }

    /// The next record (as the storage crate's type).
    pub fn next_record(&mut self) -> Record {
        loop {
            if let Some(r) = self.pending.next() {
                return r;
            }
            let batches = self.gen.trading_day(self.day);
            self.pending = batches
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .into_iter();
            self.day = self.calendar.next_trading_day(self.day);
        }
    }

    /// The next record as the API carries it.
    pub fn next_pb(&mut self) -> pb::Record {
        record_to_pb(&self.next_record())
    }
}
