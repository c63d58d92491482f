//! The subscription comparison's results: one column per system, one line per measurement,
//! the aims QAStore is held to, and, for an aim it misses, where the time went. Printed as
//! Markdown and written as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use super::rows::{CpuSplit, Fanout, Replay, ResumeTrial};
use crate::versus::report::Spread;

/// Everything measured of one system.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Its name.
    pub name: String,
    /// Fan-out rows, by subscriber count.
    pub fanout: Vec<Fanout>,
    /// The replay row, or why it failed.
    pub replay: Option<Result<Replay, String>>,
    /// Resume trials that completed.
    pub resume: Vec<ResumeTrial>,
    /// Resume trials that failed, and why.
    pub resume_failures: Vec<String>,
}

impl Measured {
    fn at(&self, subscribers: usize) -> Option<&Fanout> {
        self.fanout.iter().find(|f| f.subscribers == subscribers)
    }

    fn replay_ok(&self) -> Option<&Replay> {
        self.replay.as_ref().and_then(|r| r.as_ref().ok())
    }

    fn gaps_and_duplicates(&self) -> (u64, u64) {
        self.resume
            .iter()
            .fold((0, 0), |(g, d), t| (g + t.gaps, d + t.duplicates))
    }

    fn resume_spread(&self) -> Option<Spread> {
        Spread::of(&self.resume.iter().map(|t| t.resumed).collect::<Vec<_>>())
    }
}

/// The whole report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Each system, in the order they ran.
    pub systems: Vec<Measured>,
    /// The subscriber counts of the fan-out rows.
    pub subscribers: Vec<usize>,
    /// What was run and where.
    pub context: BTreeMap<String, String>,
}

const QA: &str = "QAStore";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn cpu_text(c: &CpuSplit) -> String {
    format!(
        "{:.0}% ({:.0}% steal); nodes {:.2}, bench {:.2} cores",
        c.machine.busy * 100.0,
        c.machine.steal * 100.0,
        c.nodes,
        c.bench
    )
}

/// One of the aims QAStore is held to.
#[derive(Debug, Clone)]
pub struct Aim {
    /// What it asks.
    pub aim: String,
    /// Whether it was met; `None` when a figure is missing.
    pub met: Option<bool>,
    /// The figures it was judged on.
    pub figures: String,
    /// Where the time went, when missed.
    pub note: Option<String>,
}

impl Report {
    fn system(&self, name: &str) -> Option<&Measured> {
        self.systems.iter().find(|s| s.name == name)
    }

    fn line(&self, out: &mut String, label: &str, cell: impl Fn(&Measured) -> String) {
        let cells: Vec<String> = self.systems.iter().map(cell).collect();
        let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
    }

    /// The table, then the aims.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let names: Vec<&str> = self.systems.iter().map(|s| s.name.as_str()).collect();
        let _ = writeln!(out, "| measurement | {} |", names.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
        for &n in &self.subscribers {
            let row = |f: fn(&Fanout) -> String| move |m: &Measured| m.at(n).map_or("-".into(), f);
            self.line(
                &mut out,
                &format!("{n} sub: records written/s"),
                row(|f| format!("{:.0}", f.written_per_sec)),
            );
            self.line(
                &mut out,
                &format!("{n} sub: events delivered/s (all subscribers)"),
                row(|f| format!("{:.0}", f.delivered_per_sec)),
            );
            self.line(
                &mut out,
                &format!("{n} sub: latency p50 / p99 / p999 ms"),
                row(|f| {
                    format!(
                        "{:.2} / {:.2} / {:.2}",
                        ms(f.latency.percentile(50.0)),
                        ms(f.latency.percentile(99.0)),
                        ms(f.latency.percentile(99.9))
                    )
                }),
            );
            self.line(
                &mut out,
                &format!("{n} sub: CPU busy; nodes / bench process"),
                row(|f| cpu_text(&f.cpu)),
            );
        }
        self.line(
            &mut out,
            "replay from the oldest: events/s (events)",
            |m| match &m.replay {
                Some(Ok(r)) => format!("{:.0} ({})", r.per_sec(), r.events),
                Some(Err(e)) => format!("failed: {e}"),
                None => "-".into(),
            },
        );
        self.line(&mut out, "replay: CPU busy; nodes / bench process", |m| {
            m.replay_ok().map_or("-".into(), |r| cpu_text(&r.cpu))
        });
        self.line(
            &mut out,
            "resume after SIGKILL of its node: ms min / median / max",
            |m| {
                m.resume_spread().map_or("-".into(), |s| {
                    format!("{:.0} / {:.0} / {:.0}", s.min, s.median, s.max)
                })
            },
        );
        self.line(
            &mut out,
            "resume: gaps / duplicates (trials, failed)",
            |m| {
                let (g, d) = m.gaps_and_duplicates();
                format!(
                    "{g} / {d} ({}, {} failed)",
                    m.resume.len(),
                    m.resume_failures.len()
                )
            },
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "| QAStore aim | met | figures |");
        let _ = writeln!(out, "|---|---|---|");
        let aims = self.aims();
        for a in &aims {
            let met = match a.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            };
            let _ = writeln!(out, "| {} | {met} | {} |", a.aim, a.figures);
        }
        let notes: Vec<&Aim> = aims.iter().filter(|a| a.note.is_some()).collect();
        if !notes.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "Where the time goes:");
            for a in notes {
                let _ = writeln!(out, "- {}: {}", a.aim, a.note.as_deref().unwrap_or(""));
            }
        }
        out
    }

    /// The aims, judged on this run's figures.
    pub fn aims(&self) -> Vec<Aim> {
        let Some(qa) = self.system(QA) else {
            return Vec::new();
        };
        let peers: Vec<&Measured> = self.systems.iter().filter(|s| s.name != QA).collect();
        let most = self.subscribers.iter().copied().max().unwrap_or(64);
        vec![
            fanout_aim(qa, &peers, most),
            latency_aim(qa, &peers, &self.subscribers),
            replay_aim(qa),
            resume_aim(qa),
        ]
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let systems: Vec<Value> = self.systems.iter().map(system_json).collect();
        let aims: Vec<Value> = self
            .aims()
            .into_iter()
            .map(|a| json!({"aim": a.aim, "met": a.met, "figures": a.figures, "note": a.note}))
            .collect();
        json!({ "context": self.context, "systems": systems, "aims": aims })
    }
}

fn fanout_aim(qa: &Measured, peers: &[&Measured], n: usize) -> Aim {
    let aim = format!("fan-out at {n} subscribers >= 5x etcd watch and above JetStream");
    let per = |m: &Measured| m.at(n).map(|f| f.delivered_per_sec);
    let Some(q) = per(qa) else {
        return Aim {
            aim,
            met: None,
            figures: "no figure".into(),
            note: None,
        };
    };
    let mut met = true;
    let mut figures = vec![format!("QAStore {q:.0}/s")];
    for p in peers {
        if let Some(v) = per(p) {
            let need = if p.name == "etcd" { 5.0 * v } else { v };
            met &= q >= need && (p.name == "etcd" || q > v);
            figures.push(format!("{} {v:.0}/s ({:.2}x)", p.name, q / v.max(1e-9)));
        }
    }
    let note = (!met).then(|| {
        qa.at(n).map_or(String::new(), |f| {
            format!(
                "writes reached {:.0} records/s, so {n} subscribers could receive {:.0} events/s; they got {:.0}. The machine was {}; latency p50 {:.1} ms against p99 {:.1} ms shows whether subscribers kept up or queued.",
                f.written_per_sec,
                f.written_per_sec * n as f64,
                f.delivered_per_sec,
                cpu_text(&f.cpu),
                ms(f.latency.percentile(50.0)),
                ms(f.latency.percentile(99.0)),
            )
        })
    });
    Aim {
        aim,
        met: Some(met),
        figures: figures.join(", "),
        note,
    }
}

fn latency_aim(qa: &Measured, peers: &[&Measured], counts: &[usize]) -> Aim {
    let aim = "p99 below etcd and JetStream at every subscriber count".to_string();
    let p99 = |m: &Measured, n: usize| m.at(n).map(|f| ms(f.latency.percentile(99.0)));
    let mut met = true;
    let mut figures = Vec::new();
    let mut missed = Vec::new();
    for &n in counts {
        let Some(q) = p99(qa, n) else { continue };
        let mut parts = vec![format!("QAStore {q:.2}")];
        for p in peers {
            if let Some(v) = p99(p, n) {
                if q >= v {
                    met = false;
                    missed.push(n);
                }
                parts.push(format!("{} {v:.2}", p.name));
            }
        }
        figures.push(format!("{n} sub: {} ms", parts.join(" / ")));
    }
    let note = (!met).then(|| {
        missed.dedup();
        missed
            .iter()
            .filter_map(|n| qa.at(*n))
            .map(|f| {
                format!(
                    "at {} subscribers p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms; machine {}",
                    f.subscribers,
                    ms(f.latency.percentile(50.0)),
                    ms(f.latency.percentile(99.0)),
                    ms(f.latency.percentile(99.9)),
                    cpu_text(&f.cpu)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    });
    Aim {
        aim,
        met: Some(met),
        figures: figures.join("; "),
        note,
    }
}

fn replay_aim(qa: &Measured) -> Aim {
    let aim = "replay >= 1 M events/s".to_string();
    let Some(r) = qa.replay_ok() else {
        return Aim {
            aim,
            met: None,
            figures: "no figure".into(),
            note: None,
        };
    };
    let met = r.per_sec() >= 1e6;
    let note = (!met).then(|| {
        format!(
            "{} events in {:.2} s; machine {}",
            r.events,
            r.took.as_secs_f64(),
            cpu_text(&r.cpu)
        )
    });
    Aim {
        aim,
        met: Some(met),
        figures: format!("{:.0} events/s", r.per_sec()),
        note,
    }
}

fn resume_aim(qa: &Measured) -> Aim {
    let aim = "zero gaps and duplicates over the resume trials".to_string();
    let (g, d) = qa.gaps_and_duplicates();
    let failed = qa.resume_failures.len();
    let met = !qa.resume.is_empty() && g == 0 && d == 0 && failed == 0;
    let note = (!met).then(|| {
        let first = qa.resume_failures.first().cloned().unwrap_or_default();
        format!("{g} gaps, {d} duplicates, {failed} failed trials {first}")
    });
    Aim {
        aim,
        met: Some(met),
        figures: format!("{g} gaps, {d} duplicates in {} trials", qa.resume.len()),
        note,
    }
}

fn system_json(m: &Measured) -> Value {
    let fanout: Vec<Value> = m
        .fanout
        .iter()
        .map(|f| {
            json!({
                "subscribers": f.subscribers,
                "written_per_sec": f.written_per_sec,
                "delivered_per_sec": f.delivered_per_sec,
                "p50_ms": ms(f.latency.percentile(50.0)),
                "p99_ms": ms(f.latency.percentile(99.0)),
                "p999_ms": ms(f.latency.percentile(99.9)),
                "events_timed": f.latency.count(),
                "cpu_busy": f.cpu.machine.busy,
                "cpu_steal": f.cpu.machine.steal,
                "node_cores": f.cpu.nodes,
                "bench_cores": f.cpu.bench,
                "write_errors": f.write_errors.0,
                "first_write_error": f.write_errors.1,
            })
        })
        .collect();
    let replay = match &m.replay {
        Some(Ok(r)) => {
            json!({"events": r.events, "secs": r.took.as_secs_f64(), "per_sec": r.per_sec(), "node_cores": r.cpu.nodes, "bench_cores": r.cpu.bench})
        }
        Some(Err(e)) => json!({"error": e}),
        None => Value::Null,
    };
    let (gaps, duplicates) = m.gaps_and_duplicates();
    json!({
        "name": m.name,
        "fanout": fanout,
        "replay": replay,
        "resume": {
            "resumed_ms": m.resume.iter().map(|t| ms(t.resumed)).collect::<Vec<_>>(),
            "gaps": gaps,
            "duplicates": duplicates,
            "failures": m.resume_failures,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fan(subscribers: usize, delivered: f64, p99_us: u64) -> Fanout {
        let mut latency = crate::Latencies::new();
        for _ in 0..100 {
            latency.record(Duration::from_micros(p99_us));
        }
        Fanout {
            subscribers,
            written_per_sec: 1000.0,
            delivered_per_sec: delivered,
            latency,
            cpu: CpuSplit::default(),
            write_errors: (0, None),
        }
    }

    fn system(name: &str, delivered: f64, p99_us: u64) -> Measured {
        Measured {
            name: name.into(),
            fanout: vec![fan(64, delivered, p99_us)],
            ..Measured::default()
        }
    }

    #[test]
    fn a_fanout_short_of_five_times_etcd_misses_its_aim_and_says_where_the_time_went() {
        let report = Report {
            systems: vec![
                system(QA, 40_000.0, 500),
                system("etcd", 10_000.0, 900),
                system("NATS JetStream", 30_000.0, 800),
            ],
            subscribers: vec![64],
            context: BTreeMap::new(),
        };
        let aims = report.aims();
        assert_eq!(aims[0].met, Some(false));
        assert!(aims[0].note.is_some());
        assert_eq!(aims[1].met, Some(true));
        let md = report.markdown();
        assert!(md.contains("| measurement | QAStore | etcd | NATS JetStream |"));
        assert!(md.contains("Where the time goes"));
    }

    #[test]
    fn five_times_etcd_and_above_jetstream_meets_the_fanout_aim() {
        let report = Report {
            systems: vec![
                system(QA, 60_000.0, 500),
                system("etcd", 10_000.0, 900),
                system("NATS JetStream", 30_000.0, 400),
            ],
            subscribers: vec![64],
            context: BTreeMap::new(),
        };
        let aims = report.aims();
        assert_eq!(aims[0].met, Some(true));
        assert_eq!(aims[1].met, Some(false));
    }
}
