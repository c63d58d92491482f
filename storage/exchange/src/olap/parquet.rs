//! Ticks and trades as Parquet files.
//!
//! One schema per kind, every column typed and required; times are `TIMESTAMP(NANOS, UTC)`.
//! The trading day and instrument are the partition directories
//! (`trading_day=YYYYMMDD/instrument=<id>`); the trading day is not repeated as a column,
//! because readers that add partition columns (pyarrow, pandas) refuse a file column of the
//! same name. Rows are sorted by time. Files are compressed with ZSTD (level 3), carry page
//! statistics and the page index, and are cut into row groups of at most 65,536 rows and half
//! an hour of exchange time, whose time statistics let readers skip them.
//!
//! Both schemas end with where each row came from ([`RowOrigin`]): `log_index` and
//! `log_ordinal`, its event's position in the journal, and `commit_time`, when its batch was
//! committed (all 0 when the journal no longer held the event at conversion). They let a
//! subscription replay ticks and trades from the files once the journal has dropped them.

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, ZstdLevel};
use parquet::column::reader::ColumnReader;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::metadata::{RowGroupMetaData, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::statistics::Statistics;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::feed::Position;
use crate::keys;
use crate::query::bar_input::{BarInput, TickOrder};
use crate::query::TimeRange;
use crate::record::{Direction, Offset, Tick, TradeExecuted, TICK_LEVELS};

/// Rows per row group.
pub const ROW_GROUP_ROWS: usize = 65_536;
/// Exchange time one row group covers at most. A replay from the files reads a window of
/// positions a row group at a time (positions follow time), so a trading day's part is cut
/// into groups of half an hour rather than being one group a replay must hold whole.
pub const ROW_GROUP_SPAN_NS: i64 = 30 * 60 * 1_000_000_000;
/// Rows per data page (so the page index is fine-grained).
const PAGE_ROWS: usize = 8_192;

/// Where a converted row came from: its event's position in the journal and its batch's commit
/// time. A log index of 0 means unknown (no write batch is ever at index 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowOrigin {
    /// The log index of the event's batch (0: unknown).
    pub log_index: u64,
    /// The event's place in its batch.
    pub ordinal: u32,
    /// When the leader proposed the batch (epoch nanoseconds; 0 when not recorded).
    pub commit_ns: i64,
}

impl RowOrigin {
    /// The event's position, when known.
    pub fn position(&self) -> Option<Position> {
        (self.log_index > 0).then(|| Position::new(self.log_index, self.ordinal))
    }
}

/// The origin columns every schema ends with.
const ORIGIN_COLUMNS: &str = "REQUIRED INT64 log_index (INTEGER(64,false));\n\
     REQUIRED INT64 log_ordinal;\n\
     REQUIRED INT64 commit_time (TIMESTAMP(NANOS,true));\n";

fn origin_values(origins: &[RowOrigin]) -> [Values; 3] {
    [
        // Stored as the bits of an unsigned 64-bit integer.
        Values::I64(origins.iter().map(|o| o.log_index as i64).collect()),
        Values::I64(origins.iter().map(|o| i64::from(o.ordinal)).collect()),
        Values::I64(origins.iter().map(|o| o.commit_ns).collect()),
    ]
}

/// The columns of one file, in schema order.
enum Values {
    Str(Vec<ByteArray>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl Values {
    fn str(it: impl Iterator<Item = String>) -> Values {
        Values::Str(it.map(|s| ByteArray::from(s.into_bytes())).collect())
    }
}

fn tick_schema() -> String {
    let mut s = String::from(
        "message tick {\n\
         REQUIRED BYTE_ARRAY instrument_id (STRING);\n\
         REQUIRED INT64 datetime (TIMESTAMP(NANOS,true));\n\
         REQUIRED INT64 sequence (INTEGER(64,false));\n\
         REQUIRED DOUBLE last_price;\n\
         REQUIRED DOUBLE open;\n\
         REQUIRED DOUBLE highest;\n\
         REQUIRED DOUBLE lowest;\n\
         REQUIRED INT64 volume;\n\
         REQUIRED DOUBLE amount;\n\
         REQUIRED INT64 open_interest;\n",
    );
    for (name, ty) in [
        ("bid_price", "DOUBLE"),
        ("bid_volume", "INT64"),
        ("ask_price", "DOUBLE"),
        ("ask_volume", "INT64"),
    ] {
        for level in 1..=TICK_LEVELS {
            s.push_str(&format!("REQUIRED {ty} {name}{level};\n"));
        }
    }
    s.push_str("REQUIRED DOUBLE upper_limit;\nREQUIRED DOUBLE lower_limit;\n");
    s.push_str(ORIGIN_COLUMNS);
    s.push_str("}\n");
    s
}

/// The first origin column of a tick file.
const TICK_ORIGIN_COLUMN: usize = 12 + 4 * TICK_LEVELS;

const TICK_TIME_COLUMN: usize = 1;

fn trade_schema() -> String {
    format!("{TRADE_COLUMNS}{ORIGIN_COLUMNS}}}\n")
}

/// The first origin column of a trade file.
const TRADE_ORIGIN_COLUMN: usize = 12;

const TRADE_COLUMNS: &str = "message trade {
  REQUIRED BYTE_ARRAY user_id (STRING);
  REQUIRED BYTE_ARRAY trade_id (STRING);
  REQUIRED BYTE_ARRAY order_id (STRING);
  REQUIRED BYTE_ARRAY exchange_id (STRING);
  REQUIRED BYTE_ARRAY instrument_id (STRING);
  REQUIRED BYTE_ARRAY exchange_trade_id (STRING);
  REQUIRED BYTE_ARRAY direction (STRING);
  REQUIRED BYTE_ARRAY offset (STRING);
  REQUIRED DOUBLE price;
  REQUIRED INT64 volume;
  REQUIRED DOUBLE commission;
  REQUIRED INT64 trade_date_time (TIMESTAMP(NANOS,true));
";

const TRADE_TIME_COLUMN: usize = 11;

/// Where the row group that starts at row `start` ends: after [`ROW_GROUP_ROWS`] rows, or at
/// the first row of a later [`ROW_GROUP_SPAN_NS`] window of exchange time than its first row.
fn group_end(times: &[i64], start: usize, rows: usize) -> usize {
    let limit = (start + ROW_GROUP_ROWS).min(rows);
    let Some(first) = times.get(start) else {
        return limit;
    };
    let window = first.div_euclid(ROW_GROUP_SPAN_NS);
    times[start..limit]
        .iter()
        .position(|t| t.div_euclid(ROW_GROUP_SPAN_NS) != window)
        .map_or(limit, |k| start + k)
}

fn write(
    schema: &str,
    columns: &[Values],
    rows: usize,
    time_column: usize,
) -> Result<Vec<u8>, ParquetError> {
    let schema = Arc::new(parse_message_type(schema)?);
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: time_column as i32,
            descending: false,
            nulls_first: false,
        }]))
        .set_created_by(format!("qastore {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, Arc::new(props))?;
    let times = match columns.get(time_column) {
        Some(Values::I64(t)) => t.as_slice(),
        _ => return Err(ParquetError::General("the time column is not INT64".into())),
    };
    let mut start = 0;
    while start < rows {
        let end = group_end(times, start, rows);
        let mut group = writer.next_row_group()?;
        for values in columns {
            let mut col = group.next_column()?.ok_or_else(|| {
                ParquetError::General("schema has fewer columns than values".into())
            })?;
            match values {
                Values::Str(v) => {
                    col.typed::<ByteArrayType>()
                        .write_batch(&v[start..end], None, None)?;
                }
                Values::I64(v) => {
                    col.typed::<Int64Type>()
                        .write_batch(&v[start..end], None, None)?;
                }
                Values::F64(v) => {
                    col.typed::<DoubleType>()
                        .write_batch(&v[start..end], None, None)?;
                }
            }
            col.close()?;
        }
        group.close()?;
        start = end;
    }
    writer.close()?;
    Ok(out)
}

/// Encodes ticks (already in time order) and where each came from as a Parquet file.
pub fn encode_ticks(ticks: &[Tick], origins: &[RowOrigin]) -> Result<Vec<u8>, ParquetError> {
    check_origins(ticks.len(), origins)?;
    let f64s = |f: &dyn Fn(&Tick) -> f64| Values::F64(ticks.iter().map(f).collect());
    let i64s = |f: &dyn Fn(&Tick) -> i64| Values::I64(ticks.iter().map(f).collect());
    let mut columns = vec![
        Values::str(ticks.iter().map(|t| t.instrument_id.clone())),
        i64s(&|t| t.datetime),
        // Stored as the bits of an unsigned 64-bit integer.
        i64s(&|t| t.sequence as i64),
        f64s(&|t| t.last_price),
        f64s(&|t| t.open),
        f64s(&|t| t.highest),
        f64s(&|t| t.lowest),
        i64s(&|t| t.volume),
        f64s(&|t| t.amount),
        i64s(&|t| t.open_interest),
    ];
    for l in 0..TICK_LEVELS {
        columns.push(f64s(&|t| t.bid_price[l]));
    }
    for l in 0..TICK_LEVELS {
        columns.push(i64s(&|t| t.bid_volume[l]));
    }
    for l in 0..TICK_LEVELS {
        columns.push(f64s(&|t| t.ask_price[l]));
    }
    for l in 0..TICK_LEVELS {
        columns.push(i64s(&|t| t.ask_volume[l]));
    }
    columns.push(f64s(&|t| t.upper_limit));
    columns.push(f64s(&|t| t.lower_limit));
    columns.extend(origin_values(origins));
    write(&tick_schema(), &columns, ticks.len(), TICK_TIME_COLUMN)
}

fn check_origins(rows: usize, origins: &[RowOrigin]) -> Result<(), ParquetError> {
    if origins.len() != rows {
        return Err(ParquetError::General(format!(
            "{} origins for {rows} rows",
            origins.len()
        )));
    }
    Ok(())
}

/// Encodes trades (already in time order) and where each came from as a Parquet file.
pub fn encode_trades(
    trades: &[TradeExecuted],
    origins: &[RowOrigin],
) -> Result<Vec<u8>, ParquetError> {
    check_origins(trades.len(), origins)?;
    let strs = |f: &dyn Fn(&TradeExecuted) -> String| Values::str(trades.iter().map(f));
    let mut columns = vec![
        strs(&|t| t.user_id.clone()),
        strs(&|t| t.trade_id.clone()),
        strs(&|t| t.order_id.clone()),
        strs(&|t| t.exchange_id.clone()),
        strs(&|t| t.instrument_id.clone()),
        strs(&|t| t.exchange_trade_id.clone()),
        strs(&|t| t.direction.as_str().to_string()),
        strs(&|t| t.offset.as_str().to_string()),
        Values::F64(trades.iter().map(|t| t.price).collect()),
        Values::I64(trades.iter().map(|t| t.volume).collect()),
        Values::F64(trades.iter().map(|t| t.commission).collect()),
        Values::I64(trades.iter().map(|t| t.trade_date_time).collect()),
    ];
    columns.extend(origin_values(origins));
    write(&trade_schema(), &columns, trades.len(), TRADE_TIME_COLUMN)
}

/// A row group's columns, read whole.
pub struct Group {
    columns: Vec<Values>,
    rows: usize,
}

fn read_column<T: parquet::data_type::DataType>(
    mut r: parquet::column::reader::ColumnReaderImpl<T>,
    rows: usize,
) -> Result<Vec<T::T>, ParquetError>
where
    T::T: Clone,
{
    let mut v = Vec::with_capacity(rows);
    while v.len() < rows {
        let (n, _, _) = r.read_records(rows - v.len(), None, None, &mut v)?;
        if n == 0 {
            break;
        }
    }
    Ok(v)
}

impl Group {
    /// Reads the columns `read` selects (the others are left empty).
    fn read(rg: &dyn RowGroupReader, rows: usize, read: Columns) -> Result<Group, ParquetError> {
        let mut columns = Vec::new();
        for c in 0..rg.num_columns() {
            if !read.wants(c) {
                columns.push(Values::Str(Vec::new()));
                continue;
            }
            let (values, len) = match rg.get_column_reader(c)? {
                ColumnReader::Int64ColumnReader(r) => {
                    let v = read_column(r, rows)?;
                    let n = v.len();
                    (Values::I64(v), n)
                }
                ColumnReader::DoubleColumnReader(r) => {
                    let v = read_column(r, rows)?;
                    let n = v.len();
                    (Values::F64(v), n)
                }
                ColumnReader::ByteArrayColumnReader(r) => {
                    let v = read_column(r, rows)?;
                    let n = v.len();
                    (Values::Str(v), n)
                }
                _ => {
                    return Err(ParquetError::General(format!(
                        "column {c} has an unexpected type"
                    )))
                }
            };
            if len != rows {
                return Err(ParquetError::General(format!(
                    "column {c} has {len} of {rows} values"
                )));
            }
            columns.push(values);
        }
        Ok(Group { columns, rows })
    }

    fn i64(&self, c: usize, row: usize) -> Result<i64, ParquetError> {
        match self.columns.get(c) {
            Some(Values::I64(v)) => Ok(v[row]),
            _ => Err(ParquetError::General(format!("column {c} is not INT64"))),
        }
    }

    fn f64(&self, c: usize, row: usize) -> Result<f64, ParquetError> {
        match self.columns.get(c) {
            Some(Values::F64(v)) => Ok(v[row]),
            _ => Err(ParquetError::General(format!("column {c} is not DOUBLE"))),
        }
    }

    fn str(&self, c: usize, row: usize) -> Result<String, ParquetError> {
        match self.columns.get(c) {
            Some(Values::Str(v)) => String::from_utf8(v[row].data().to_vec())
                .map_err(|_| ParquetError::General(format!("column {c} is not UTF-8"))),
            _ => Err(ParquetError::General(format!("column {c} is not a string"))),
        }
    }
}

/// Indexes of the row groups whose time statistics overlap `range`.
/// The smallest and largest value of an INT64 column in a row group, from its statistics.
fn int64_range(rg: &RowGroupMetaData, column: usize) -> Option<(i64, i64)> {
    match rg.column(column).statistics() {
        Some(Statistics::Int64(s)) => Some((*s.min_opt()?, *s.max_opt()?)),
        _ => None,
    }
}

fn groups_in(
    reader: &SerializedFileReader<Bytes>,
    time_column: usize,
    range: TimeRange,
) -> Vec<usize> {
    let meta = reader.metadata();
    (0..meta.num_row_groups())
        .filter(|&i| match int64_range(meta.row_group(i), time_column) {
            Some((min, max)) => max >= range.from && min < range.to,
            None => true,
        })
        .collect()
}

/// What every row of a file shares.
pub struct Context {
    trading_day: u32,
    instrument: String,
    range: TimeRange,
}

impl Context {
    fn new(trading_day: u32, instrument: &str, range: TimeRange) -> Context {
        Context {
            trading_day,
            instrument: instrument.to_string(),
            range,
        }
    }
}

type Decode<T> = fn(&Group, &Context, &mut Vec<T>) -> Result<(), ParquetError>;

/// Which columns of a row group to read.
#[derive(Debug, Clone, Copy)]
pub enum Columns {
    /// All but these.
    AllBut(&'static [usize]),
    /// Only these.
    Only(&'static [usize]),
}

impl Columns {
    fn wants(self, c: usize) -> bool {
        match self {
            Columns::AllBut(skip) => !skip.contains(&c),
            Columns::Only(keep) => keep.contains(&c),
        }
    }
}

/// A file read one row group at a time, skipping groups outside the range.
pub struct GroupReader<T> {
    reader: SerializedFileReader<Bytes>,
    groups: std::vec::IntoIter<usize>,
    decode: Decode<T>,
    columns: Columns,
    context: Context,
}

impl<T> GroupReader<T> {
    fn new(
        file: Bytes,
        time_column: usize,
        decode: Decode<T>,
        columns: Columns,
        context: Context,
    ) -> Result<Self, ParquetError> {
        let reader = SerializedFileReader::new(file)?;
        let groups = groups_in(&reader, time_column, context.range);
        Ok(GroupReader {
            reader,
            groups: groups.into_iter(),
            decode,
            columns,
            context,
        })
    }

    /// Reads only those of its row groups that `keep` lists.
    pub fn only(mut self, keep: &[usize]) -> Self {
        let groups: Vec<usize> = self.groups.by_ref().filter(|g| keep.contains(g)).collect();
        self.groups = groups.into_iter();
        self
    }
}

/// The range of log indexes a row group's origin column holds (from its statistics), and its
/// row count: what a replay needs to read only the groups that hold a window of positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpan {
    /// The row group's number in its file.
    pub group: usize,
    /// Its lowest log index (0 when some rows' origin is unknown).
    pub first: u64,
    /// Its highest log index.
    pub last: u64,
    /// Its rows.
    pub rows: u64,
}

/// The log index span of every row group of a tick file.
pub fn tick_index_spans(file: Bytes) -> Result<Vec<IndexSpan>, ParquetError> {
    index_spans(file, TICK_ORIGIN_COLUMN)
}

/// The log index span of every row group of a trade file.
pub fn trade_index_spans(file: Bytes) -> Result<Vec<IndexSpan>, ParquetError> {
    index_spans(file, TRADE_ORIGIN_COLUMN)
}

fn index_spans(file: Bytes, column: usize) -> Result<Vec<IndexSpan>, ParquetError> {
    let reader = SerializedFileReader::new(file)?;
    let meta = reader.metadata();
    (0..meta.num_row_groups())
        .map(|group| {
            let rg = meta.row_group(group);
            let rows = u64::try_from(rg.num_rows())
                .map_err(|_| ParquetError::General("negative row count".into()))?;
            // Without statistics the group may hold any index: it is always read.
            let (first, last) = int64_range(rg, column)
                .map_or((0, u64::MAX), |(min, max)| (min as u64, max as u64));
            Ok(IndexSpan {
                group,
                first,
                last,
                rows,
            })
        })
        .collect()
}

impl<T> Iterator for GroupReader<T> {
    /// The rows of the next row group within the range.
    type Item = Result<Vec<T>, ParquetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let i = self.groups.next()?;
        let rows = match usize::try_from(self.reader.metadata().row_group(i).num_rows()) {
            Ok(n) => n,
            Err(_) => return Some(Err(ParquetError::General("negative row count".into()))),
        };
        let mut out = Vec::with_capacity(rows);
        let result = self
            .reader
            .get_row_group(i)
            .and_then(|rg| Group::read(rg.as_ref(), rows, self.columns))
            .and_then(|g| (self.decode)(&g, &self.context, &mut out));
        Some(result.map(|()| out))
    }
}

/// Pushes `row(r)` for every row `r` of `g` whose time (column `time`) lies in the range.
fn rows_in_range<T>(
    g: &Group,
    cx: &Context,
    time: usize,
    out: &mut Vec<T>,
    row: impl Fn(usize) -> Result<T, ParquetError>,
) -> Result<(), ParquetError> {
    for r in 0..g.rows {
        if cx.range.contains(g.i64(time, r)?) {
            out.push(row(r)?);
        }
    }
    Ok(())
}

fn decode_tick_group(g: &Group, cx: &Context, out: &mut Vec<Tick>) -> Result<(), ParquetError> {
    rows_in_range(g, cx, TICK_TIME_COLUMN, out, |r| tick_at(g, cx, r))
}

fn decode_tick_events(
    g: &Group,
    cx: &Context,
    out: &mut Vec<(RowOrigin, Tick)>,
) -> Result<(), ParquetError> {
    rows_in_range(g, cx, TICK_TIME_COLUMN, out, |r| {
        Ok((origin_at(g, TICK_ORIGIN_COLUMN, r)?, tick_at(g, cx, r)?))
    })
}

/// The origin of row `r`, from the origin columns starting at `first`.
fn origin_at(g: &Group, first: usize, r: usize) -> Result<RowOrigin, ParquetError> {
    let ordinal = g.i64(first + 1, r)?;
    Ok(RowOrigin {
        log_index: g.i64(first, r)? as u64,
        ordinal: u32::try_from(ordinal)
            .map_err(|_| ParquetError::General(format!("log_ordinal {ordinal} out of range")))?,
        commit_ns: g.i64(first + 2, r)?,
    })
}

fn tick_at(g: &Group, cx: &Context, r: usize) -> Result<Tick, ParquetError> {
    let datetime = g.i64(1, r)?;
    let mut t = Tick {
        instrument_id: cx.instrument.clone(),
        datetime,
        sequence: g.i64(2, r)? as u64,
        trading_day: cx.trading_day,
        last_price: g.f64(3, r)?,
        open: g.f64(4, r)?,
        highest: g.f64(5, r)?,
        lowest: g.f64(6, r)?,
        volume: g.i64(7, r)?,
        amount: g.f64(8, r)?,
        open_interest: g.i64(9, r)?,
        ..Tick::default()
    };
    for l in 0..TICK_LEVELS {
        t.bid_price[l] = g.f64(10 + l, r)?;
        t.bid_volume[l] = g.i64(10 + TICK_LEVELS + l, r)?;
        t.ask_price[l] = g.f64(10 + 2 * TICK_LEVELS + l, r)?;
        t.ask_volume[l] = g.i64(10 + 3 * TICK_LEVELS + l, r)?;
    }
    t.upper_limit = g.f64(10 + 4 * TICK_LEVELS, r)?;
    t.lower_limit = g.f64(11 + 4 * TICK_LEVELS, r)?;
    Ok(t)
}

fn parse_enum<T>(
    text: &str,
    column: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, ParquetError> {
    parse(text).ok_or_else(|| ParquetError::General(format!("{column} value {text:?} is unknown")))
}

fn decode_trade_group(
    g: &Group,
    cx: &Context,
    out: &mut Vec<TradeExecuted>,
) -> Result<(), ParquetError> {
    rows_in_range(g, cx, TRADE_TIME_COLUMN, out, |r| trade_at(g, cx, r))
}

fn decode_trade_events(
    g: &Group,
    cx: &Context,
    out: &mut Vec<(RowOrigin, TradeExecuted)>,
) -> Result<(), ParquetError> {
    rows_in_range(g, cx, TRADE_TIME_COLUMN, out, |r| {
        Ok((origin_at(g, TRADE_ORIGIN_COLUMN, r)?, trade_at(g, cx, r)?))
    })
}

fn trade_at(g: &Group, cx: &Context, r: usize) -> Result<TradeExecuted, ParquetError> {
    let time = g.i64(11, r)?;
    Ok(TradeExecuted {
        user_id: g.str(0, r)?,
        trade_id: g.str(1, r)?,
        order_id: g.str(2, r)?,
        exchange_id: g.str(3, r)?,
        instrument_id: g.str(4, r)?,
        exchange_trade_id: g.str(5, r)?,
        direction: parse_enum(&g.str(6, r)?, "direction", Direction::parse)?,
        offset: parse_enum(&g.str(7, r)?, "offset", Offset::parse)?,
        price: g.f64(8, r)?,
        volume: g.i64(9, r)?,
        commission: g.f64(10, r)?,
        trade_date_time: time,
        trading_day: cx.trading_day,
    })
}

/// Reads the ticks of `range` from the tick file of `instrument` on `trading_day`, a row group
/// at a time.
pub fn tick_groups(
    file: Bytes,
    trading_day: u32,
    instrument: &str,
    range: TimeRange,
) -> Result<GroupReader<Tick>, ParquetError> {
    // The instrument column is the same on every row; the partition says it.
    GroupReader::new(
        file,
        TICK_TIME_COLUMN,
        decode_tick_group,
        Columns::AllBut(&[0]),
        Context::new(trading_day, instrument, range),
    )
}

/// Reads the trades of `range` from the trade file of `instrument` on `trading_day`, a row
/// group at a time.
pub fn trade_groups(
    file: Bytes,
    trading_day: u32,
    instrument: &str,
    range: TimeRange,
) -> Result<GroupReader<TradeExecuted>, ParquetError> {
    GroupReader::new(
        file,
        TRADE_TIME_COLUMN,
        decode_trade_group,
        Columns::AllBut(&[]),
        Context::new(trading_day, instrument, range),
    )
}

/// Reads every tick of a tick file with where each came from, a row group at a time.
pub fn tick_events(
    file: Bytes,
    trading_day: u32,
    instrument: &str,
) -> Result<GroupReader<(RowOrigin, Tick)>, ParquetError> {
    GroupReader::new(
        file,
        TICK_TIME_COLUMN,
        decode_tick_events,
        Columns::AllBut(&[0]),
        Context::new(trading_day, instrument, TimeRange::all()),
    )
}

/// Reads every trade of a trade file with where each came from, a row group at a time.
pub fn trade_events(
    file: Bytes,
    trading_day: u32,
    instrument: &str,
) -> Result<GroupReader<(RowOrigin, TradeExecuted)>, ParquetError> {
    GroupReader::new(
        file,
        TRADE_TIME_COLUMN,
        decode_trade_events,
        Columns::AllBut(&[]),
        Context::new(trading_day, instrument, TimeRange::all()),
    )
}

fn decode_tick_inputs(
    g: &Group,
    cx: &Context,
    out: &mut Vec<(TickOrder, BarInput)>,
) -> Result<(), ParquetError> {
    for r in 0..g.rows {
        let time = g.i64(1, r)?;
        if !cx.range.contains(time) {
            continue;
        }
        let order = (time, g.i64(2, r)? as u64);
        out.push((
            order,
            BarInput {
                trading_day: cx.trading_day,
                time,
                price: g.f64(3, r)?,
                volume: g.i64(7, r)?,
                amount: g.f64(8, r)?,
                open_interest: Some(g.i64(9, r)?),
                exchange_trade_id: String::new(),
            },
        ));
    }
    Ok(())
}

fn decode_trade_inputs(
    g: &Group,
    cx: &Context,
    out: &mut Vec<(Vec<u8>, BarInput)>,
) -> Result<(), ParquetError> {
    for r in 0..g.rows {
        let time = g.i64(11, r)?;
        if !cx.range.contains(time) {
            continue;
        }
        let key = keys::trade_by_instrument(&cx.instrument, time, &g.str(0, r)?, &g.str(1, r)?);
        out.push((
            key,
            BarInput {
                trading_day: cx.trading_day,
                time,
                price: g.f64(8, r)?,
                volume: g.i64(9, r)?,
                amount: 0.0,
                open_interest: None,
                exchange_trade_id: g.str(5, r)?,
            },
        ));
    }
    Ok(())
}

/// Reads only what bars need from the tick file of `trading_day`: time, sequence, last price,
/// cumulative volume and turnover, open interest (6 of its 32 columns).
pub fn tick_bar_inputs(
    file: Bytes,
    trading_day: u32,
    range: TimeRange,
) -> Result<GroupReader<(TickOrder, BarInput)>, ParquetError> {
    GroupReader::new(
        file,
        TICK_TIME_COLUMN,
        decode_tick_inputs,
        Columns::Only(&[1, 2, 3, 7, 8, 9]),
        Context::new(trading_day, "", range),
    )
}

/// Reads only what bars need from the trade file of `instrument` on `trading_day`, keyed as in
/// the LSM: user, trade id, exchange trade id, price, volume, time.
pub fn trade_bar_inputs(
    file: Bytes,
    trading_day: u32,
    instrument: &str,
    range: TimeRange,
) -> Result<GroupReader<(Vec<u8>, BarInput)>, ParquetError> {
    GroupReader::new(
        file,
        TRADE_TIME_COLUMN,
        decode_trade_inputs,
        Columns::Only(&[0, 1, 5, 8, 9, 11]),
        Context::new(trading_day, instrument, range),
    )
}

fn collect<T>(groups: GroupReader<T>) -> Result<Vec<T>, ParquetError> {
    let mut out = Vec::new();
    for g in groups {
        out.extend(g?);
    }
    Ok(out)
}

/// Reads every tick of `range` from a tick file.
pub fn decode_ticks(
    file: Bytes,
    trading_day: u32,
    instrument: &str,
    range: TimeRange,
) -> Result<Vec<Tick>, ParquetError> {
    collect(tick_groups(file, trading_day, instrument, range)?)
}

/// Reads every trade of `range` from a trade file.
pub fn decode_trades(
    file: Bytes,
    trading_day: u32,
    instrument: &str,
    range: TimeRange,
) -> Result<Vec<TradeExecuted>, ParquetError> {
    collect(trade_groups(file, trading_day, instrument, range)?)
}
