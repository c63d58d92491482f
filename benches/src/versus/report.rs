//! The comparison's results: one row per measurement with every system's figure side by side
//! and the ratio, printed as text and written as JSON and Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use qastore_client::StageSummary;
use qastore_testkit::load::LoadResult;

/// One system's figures in a load row.
#[derive(Debug, Clone)]
pub struct LoadFigures {
    /// Operations (or records) per second.
    pub per_sec: f64,
    /// Latency percentiles, in milliseconds: p50, p99, p999.
    pub latency_ms: [f64; 3],
    /// Failed operations in the measured window.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Machine CPU busy and steal during the row, 0 to 1.
    pub cpu: (f64, f64),
    /// CPU time the system's nodes spent per counted operation (per record where the row counts
    /// records), in microseconds, from their own counters (the load generator not included).
    pub node_cpu_us: Option<f64>,
    /// Where the system's writes spent their time in the measured stretch, stage by stage (a
    /// QAStore write row; empty elsewhere).
    pub write_stages: Vec<StageSummary>,
}

impl LoadFigures {
    /// The figures of `r`, counting records (`records`) or operations.
    pub fn of(r: &LoadResult, records: bool) -> LoadFigures {
        LoadFigures {
            per_sec: if records {
                r.records_per_sec()
            } else {
                r.ops_per_sec()
            },
            latency_ms: [r.latency_ms(0.5), r.latency_ms(0.99), r.latency_ms(0.999)],
            errors: r.errors,
            first_error: r.first_error.clone(),
            cpu: (r.cpu.busy, r.cpu.steal),
            node_cpu_us: None,
            write_stages: Vec::new(),
        }
    }

    /// With the write-stage breakdown the nodes counted during the row.
    pub fn with_write_stages(mut self, stages: Vec<StageSummary>) -> LoadFigures {
        self.write_stages = stages;
        self
    }

    /// With the nodes' CPU: `secs` they spent during the measured stretch of `r`.
    pub fn with_node_cpu(mut self, secs: f64, r: &LoadResult, records: bool) -> LoadFigures {
        let done = if records { r.records } else { r.ops };
        self.node_cpu_us = (done > 0).then(|| secs * 1e6 / done as f64);
        self
    }
}

/// Min, median and max of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// The smallest.
    pub min: f64,
    /// The median.
    pub median: f64,
    /// The largest.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

impl Spread {
    /// The spread of `values`; `None` if there are none.
    pub fn of(values: &[Duration]) -> Option<Spread> {
        let mut ms: Vec<f64> = values.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        if ms.is_empty() {
            return None;
        }
        ms.sort_by(f64::total_cmp);
        let mid = ms.len() / 2;
        let median = if ms.len().is_multiple_of(2) {
            (ms[mid - 1] + ms[mid]) / 2.0
        } else {
            ms[mid]
        };
        Some(Spread {
            min: ms[0],
            median,
            max: ms[ms.len() - 1],
            n: ms.len(),
        })
    }
}

/// A row of the report.
#[derive(Debug, Clone)]
pub enum Row {
    /// A load row: throughput (higher is better) and latencies.
    Load {
        /// What was run.
        label: String,
        /// Concurrent clients.
        clients: usize,
        /// "ops/s" or "records/s".
        unit: &'static str,
        /// Each system's figures, by system name.
        systems: BTreeMap<String, LoadFigures>,
    },
    /// A failover row: durations (lower is better).
    Failover {
        /// What was measured.
        label: String,
        /// Each system's spread, by system name; `None` if every trial failed.
        systems: BTreeMap<String, Option<Spread>>,
        /// Failed trials, by system name.
        failures: BTreeMap<String, Vec<String>>,
    },
}

/// The whole report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The rows, in the order they ran.
    pub rows: Vec<Row>,
    /// What was run and where: machine, versions, settings.
    pub context: BTreeMap<String, String>,
}

const QA: &str = "QAStore";
const ETCD: &str = "etcd";

fn ratio(qa: Option<f64>, etcd: Option<f64>) -> Option<f64> {
    match (qa, etcd) {
        (Some(q), Some(e)) if e > 0.0 => Some(q / e),
        _ => None,
    }
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

impl Report {
    /// The rows as Markdown: a throughput table and a failover table, ratio QAStore / etcd.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| load | clients | QAStore | etcd | QAStore / etcd | QAStore p50 / p99 / p999 ms | etcd p50 / p99 / p999 ms | CPU busy (steal) QAStore / etcd | nodes' CPU us per op (record) QAStore / etcd |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        for row in &self.rows {
            let Row::Load {
                label,
                clients,
                unit,
                systems,
            } = row
            else {
                continue;
            };
            let per = |s: &str| systems.get(s).map(|f| f.per_sec);
            let lat = |s: &str| {
                systems.get(s).map_or("-".into(), |f| {
                    format!(
                        "{:.2} / {:.2} / {:.2}",
                        f.latency_ms[0], f.latency_ms[1], f.latency_ms[2]
                    )
                })
            };
            let cpu = |s: &str| {
                systems.get(s).map_or("-".into(), |f| {
                    format!("{:.0}% ({:.0}%)", f.cpu.0 * 100.0, f.cpu.1 * 100.0)
                })
            };
            let node_cpu = |s: &str| fmt_opt(systems.get(s).and_then(|f| f.node_cpu_us), 1);
            let _ = writeln!(
                out,
                "| {label} | {clients} | {} {unit} | {} {unit} | {}x | {} | {} | {} / {} | {} / {} |",
                fmt_opt(per(QA), 0),
                fmt_opt(per(ETCD), 0),
                fmt_opt(ratio(per(QA), per(ETCD)), 2),
                lat(QA),
                lat(ETCD),
                cpu(QA),
                cpu(ETCD),
                node_cpu(QA),
                node_cpu(ETCD),
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| failover (ms) | QAStore min / median / max | etcd min / median / max | median QAStore / etcd |"
        );
        let _ = writeln!(out, "|---|---|---|---|");
        for row in &self.rows {
            let Row::Failover { label, systems, .. } = row else {
                continue;
            };
            let spread = |s: &str| {
                systems.get(s).and_then(|x| *x).map_or("-".into(), |x| {
                    format!(
                        "{:.0} / {:.0} / {:.0} ({} trials)",
                        x.min, x.median, x.max, x.n
                    )
                })
            };
            let median = |s: &str| systems.get(s).and_then(|x| *x).map(|x| x.median);
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {}x |",
                spread(QA),
                spread(ETCD),
                fmt_opt(ratio(median(QA), median(ETCD)), 2)
            );
        }
        out.push_str(&self.breakdown_markdown());
        out
    }

    /// Per write row of QAStore, a table "where a write's time goes": one line per stage, one
    /// column per client count, p50 / p99 in microseconds.
    fn breakdown_markdown(&self) -> String {
        let mut kinds: Vec<&str> = Vec::new();
        let mut columns: BTreeMap<&str, Vec<(usize, &[StageSummary])>> = BTreeMap::new();
        for row in &self.rows {
            let Row::Load {
                label,
                clients,
                systems,
                ..
            } = row
            else {
                continue;
            };
            let Some(f) = systems.get(QA).filter(|f| !f.write_stages.is_empty()) else {
                continue;
            };
            if !kinds.contains(&label.as_str()) {
                kinds.push(label);
            }
            columns
                .entry(label)
                .or_default()
                .push((*clients, &f.write_stages));
        }
        let mut out = String::new();
        for kind in kinds {
            let cols = &columns[kind];
            let _ = writeln!(
                out,
                "\nWhere a QAStore write's time goes, {kind}: p50 / p99 in us per stage, all \
                 nodes (validate .. answer add up to total at the leader; leader_fsync, send and \
                 follower_round_trip run beside commit; follower_append is the followers' side)\n"
            );
            let header: Vec<String> = cols.iter().map(|(c, _)| format!("{c} clients")).collect();
            let _ = writeln!(out, "| stage | {} |", header.join(" | "));
            let _ = writeln!(out, "|---|{}", "---|".repeat(cols.len()));
            let mut stages: Vec<&str> = Vec::new();
            for (_, summaries) in cols {
                for s in summaries.iter() {
                    if !stages.contains(&s.stage.as_str()) {
                        stages.push(&s.stage);
                    }
                }
            }
            for stage in stages {
                let cells: Vec<String> = cols
                    .iter()
                    .map(|(_, summaries)| {
                        summaries
                            .iter()
                            .find(|s| s.stage == stage)
                            .map_or("-".into(), |s| format!("{:.0} / {:.0}", s.p50_us, s.p99_us))
                    })
                    .collect();
                let _ = writeln!(out, "| {stage} | {} |", cells.join(" | "));
            }
        }
        out
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| match row {
                Row::Load {
                    label,
                    clients,
                    unit,
                    systems,
                } => {
                    let per = |s: &str| systems.get(s).map(|f| f.per_sec);
                    json!({
                        "kind": "load",
                        "label": label,
                        "clients": clients,
                        "unit": unit,
                        "ratio_qastore_to_etcd": ratio(per(QA), per(ETCD)),
                        "systems": systems.iter().map(|(name, f)| (name.clone(), json!({
                            "per_sec": f.per_sec,
                            "p50_ms": f.latency_ms[0],
                            "p99_ms": f.latency_ms[1],
                            "p999_ms": f.latency_ms[2],
                            "errors": f.errors,
                            "first_error": f.first_error,
                            "cpu_busy": f.cpu.0,
                            "cpu_steal": f.cpu.1,
                            "node_cpu_us_per_op": f.node_cpu_us,
                            "write_stages": f.write_stages.iter().map(|s| json!({
                                "stage": s.stage,
                                "count": s.count,
                                "p50_us": s.p50_us,
                                "p99_us": s.p99_us,
                                "mean_us": s.mean_us,
                            })).collect::<Vec<_>>(),
                        }))).collect::<serde_json::Map<_, _>>(),
                    })
                }
                Row::Failover {
                    label,
                    systems,
                    failures,
                } => {
                    let median = |s: &str| systems.get(s).and_then(|x| *x).map(|x| x.median);
                    json!({
                        "kind": "failover",
                        "label": label,
                        "ratio_qastore_to_etcd": ratio(median(QA), median(ETCD)),
                        "systems": systems.iter().map(|(name, x)| (name.clone(), match x {
                            Some(x) => json!({"min_ms": x.min, "median_ms": x.median, "max_ms": x.max, "trials": x.n}),
                            None => Value::Null,
                        })).collect::<serde_json::Map<_, _>>(),
                        "failures": failures,
                    })
                }
            })
            .collect();
        json!({ "context": self.context, "rows": rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_and_ratios() {
        let ms = Duration::from_millis;
        let s = Spread::of(&[ms(30), ms(10), ms(20), ms(40)]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (10.0, 25.0, 40.0, 4));
        assert!(Spread::of(&[]).is_none());
        assert_eq!(ratio(Some(10.0), Some(4.0)), Some(2.5));
        assert_eq!(ratio(Some(10.0), None), None);
    }
}
