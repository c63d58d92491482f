//! A realistic exchange workload for the demo and the bench: the storage crate's generator
//! (ticks, books, orders, fills, accounts, positions over the trading calendar), as API
//! records.

use qastore_cluster::convert::records::record_to_pb;
use qastore_exchange::calendar::TradingCalendar;
use qastore_exchange::datagen::{ExchangeGen, GenConfig};
use qastore_exchange::record::Record;
use qastore_proto::v1 as pb;

/// The first trading day generated.
pub const FIRST_DAY: u32 = 20241202;

/// Where a workload's data goes: its users and instruments. The demo and `qastore bench` use
/// different ones, so a bench run against the demo's cluster never touches the demo's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// User ids are this prefix and a four-digit number.
    pub user_prefix: &'static str,
    /// Added to every contract number of the instrument universe.
    pub contract_shift: u32,
}

impl Placement {
    /// The demo's data: users `u0001`..., instruments `IF2412`, `cu2501`, ...
    pub const DEMO: Placement = Placement {
        user_prefix: "u",
        contract_shift: 0,
    };
    /// The bench's data: users `b0001`..., instruments `IF3412`, `cu3501`, ...
    pub const BENCH: Placement = Placement {
        user_prefix: "b",
        contract_shift: 1000,
    };

    /// The id of user `n` (from 1).
    pub fn user(&self, n: usize) -> String {
        format!("{}{n:04}", self.user_prefix)
    }
}

/// A stream of records, day after day, in the order the exchange would write them.
pub struct Workload {
    gen: ExchangeGen,
    day: u32,
    calendar: TradingCalendar,
    pending: std::vec::IntoIter<Record>,
}

impl Workload {
    /// A workload over `instruments` instruments and `users` users, deterministic for `seed`,
    /// with the demo's users and instruments.
    pub fn new(seed: u64, instruments: usize, users: usize) -> Workload {
        Workload::placed(seed, instruments, users, Placement::DEMO)
    }

    /// A workload like [`Workload::new`] whose users and instruments are those of `placement`.
    pub fn placed(seed: u64, instruments: usize, users: usize, placement: Placement) -> Workload {
        let calendar = TradingCalendar::builtin();
        let gen = ExchangeGen::new(
            GenConfig {
                seed,
                instruments,
                users,
                order_rate: 0.2,
                user_prefix: placement.user_prefix.into(),
                contract_shift: placement.contract_shift,
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

    /// The same workload, generating from trading day `day` (`YYYYMMDD`) on instead of
    /// [`FIRST_DAY`]: a load of the current day's data does not make the nodes convert closed
    /// days to Parquet while it runs.
    pub fn from_day(mut self, day: u32) -> Workload {
        self.day = day;
        self
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
