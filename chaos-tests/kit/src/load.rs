//! The closed-loop load engine shared by the cluster benchmarks: `clients` concurrent workers,
//! each with one request in flight, a warm-up whose operations are not counted, then a fixed
//! measured window with a latency histogram (microseconds) per row.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::cpu::{CpuSample, CpuUsage};

/// What one row of load measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Operations completed in the measured window.
    pub ops: u64,
    /// Records they carried (an operation may carry many).
    pub records: u64,
    /// Operations that failed in the measured window.
    pub errors: u64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// Latency of each successful operation, in microseconds.
    pub latency_us: Histogram<u64>,
    /// The measured window.
    pub elapsed: Duration,
    /// CPU use of the whole machine during the window.
    pub cpu: CpuUsage,
}

impl LoadResult {
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Records per second.
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency of an operation at quantile `q`, in milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

/// An empty latency histogram (1 µs to 1 h, 3 significant figures).
pub fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!())
}

/// How long to warm up and to measure.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Operations in this first stretch are not counted.
    pub warmup: Duration,
    /// The measured stretch.
    pub measure: Duration,
}

/// One worker's tally.
struct Tally {
    ops: u64,
    records: u64,
    errors: u64,
    first_error: Option<String>,
    hist: Histogram<u64>,
}

/// Runs `op(worker, seq)` in a closed loop on `clients` workers for the warm-up and the
/// measured window. `op` answers how many records the operation carried. With no clients it
/// returns an empty result at once.
pub async fn closed_loop<F, Fut>(clients: usize, window: Window, op: F) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64, String>> + Send + 'static,
{
    let empty = |elapsed| LoadResult {
        ops: 0,
        records: 0,
        errors: 0,
        first_error: None,
        latency_us: histogram(),
        elapsed,
        cpu: CpuUsage::default(),
    };
    if clients == 0 {
        return empty(Duration::ZERO);
    }
    let op = Arc::new(op);
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..clients {
        let (op, counting, stop) = (op.clone(), counting.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut t = Tally {
                ops: 0,
                records: 0,
                errors: 0,
                first_error: None,
                hist: histogram(),
            };
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let started = Instant::now();
                let counted = counting.load(Ordering::Relaxed);
                let result = op(w, seq).await;
                // Only operations that started and ended inside the window count.
                if !counted || stop.load(Ordering::Relaxed) {
                    continue;
                }
                match result {
                    Ok(records) => {
                        t.ops += 1;
                        t.records += records;
                        let _ = t.hist.record(started.elapsed().as_micros().max(1) as u64);
                    }
                    Err(e) => {
                        t.errors += 1;
                        t.first_error.get_or_insert(e);
                    }
                }
            }
            t
        }));
    }
    tokio::time::sleep(window.warmup).await;
    let cpu_before = CpuSample::now();
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(window.measure).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut result = empty(elapsed);
    result.cpu = CpuSample::now().since(&cpu_before);
    for w in workers {
        let Ok(t) = w.await else { continue };
        result.ops += t.ops;
        result.records += t.records;
        result.errors += t.errors;
        if result.first_error.is_none() {
            result.first_error = t.first_error;
        }
        let _ = result.latency_us.add(&t.hist);
    }
    result
}
