//! Where a cluster's writes spend their time: every node's per-stage histograms of the write
//! path (`GetWriteStages`), summed over the nodes, and the difference of two readings turned
//! into percentiles per stage.

use std::collections::BTreeMap;

use qastore_proto::v1 as pb;

use crate::{Client, ClientError};

/// One stage's counts: buckets by upper bound, and the sum of the durations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Counts {
    upper_bounds_us: Vec<u64>,
    counts: Vec<u64>,
    sum_ns: u64,
}

/// The write stages' histograms of a set of nodes, summed, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageCounts {
    /// In the order the nodes list them.
    order: Vec<String>,
    by_stage: BTreeMap<String, Counts>,
}

/// One stage over a window: how many durations, and their percentiles and mean.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSummary {
    /// The stage's name (see the admin API's `StageHistogram`).
    pub stage: String,
    /// Durations counted (writes, or follower answers for the per-follower stages).
    pub count: u64,
    /// The median, in microseconds (interpolated within its bucket).
    pub p50_us: f64,
    /// The 99th percentile, in microseconds.
    pub p99_us: f64,
    /// The mean, in microseconds.
    pub mean_us: f64,
}

impl StageCounts {
    /// Adds one node's answer.
    pub fn add(&mut self, answer: &pb::WriteStagesResponse) {
        for h in &answer.stages {
            if !self.order.contains(&h.stage) {
                self.order.push(h.stage.clone());
            }
            let c = self.by_stage.entry(h.stage.clone()).or_default();
            if c.counts.is_empty() {
                c.upper_bounds_us = h.upper_bounds_us.clone();
                c.counts = vec![0; h.counts.len()];
            }
            if c.upper_bounds_us != h.upper_bounds_us || c.counts.len() != h.counts.len() {
                // Nodes of another version with other buckets: not comparable, left out.
                continue;
            }
            for (sum, n) in c.counts.iter_mut().zip(&h.counts) {
                *sum += n;
            }
            c.sum_ns += h.sum_ns;
        }
    }

    /// What was counted after `earlier` (a reading of the same nodes taken before this one).
    pub fn since(&self, earlier: &StageCounts) -> StageCounts {
        let mut out = self.clone();
        for (stage, c) in out.by_stage.iter_mut() {
            if let Some(e) = earlier.by_stage.get(stage) {
                if e.counts.len() == c.counts.len() {
                    for (n, before) in c.counts.iter_mut().zip(&e.counts) {
                        *n = n.saturating_sub(*before);
                    }
                    c.sum_ns = c.sum_ns.saturating_sub(e.sum_ns);
                }
            }
        }
        out
    }

    /// Every stage that counted something, in the nodes' order.
    pub fn summaries(&self) -> Vec<StageSummary> {
        self.order
            .iter()
            .filter_map(|stage| {
                let c = self.by_stage.get(stage)?;
                let count: u64 = c.counts.iter().sum();
                (count > 0).then(|| StageSummary {
                    stage: stage.clone(),
                    count,
                    p50_us: quantile_us(c, 0.5),
                    p99_us: quantile_us(c, 0.99),
                    mean_us: c.sum_ns as f64 / count as f64 / 1e3,
                })
            })
            .collect()
    }
}

/// The `q` quantile of `c`, interpolated linearly within its bucket; the last bound for
/// durations above every bound.
fn quantile_us(c: &Counts, q: f64) -> f64 {
    let count: u64 = c.counts.iter().sum();
    let rank = (q * count as f64).ceil().max(1.0);
    let mut below = 0u64;
    for (i, n) in c.counts.iter().enumerate() {
        if *n > 0 && (below + n) as f64 >= rank {
            let Some(&upper) = c.upper_bounds_us.get(i) else {
                return c.upper_bounds_us.last().copied().unwrap_or(0) as f64;
            };
            let lower = if i == 0 { 0 } else { c.upper_bounds_us[i - 1] };
            let within = (rank - below as f64) / *n as f64;
            return lower as f64 + within * (upper - lower) as f64;
        }
        below += n;
    }
    0.0
}

impl Client {
    /// Every endpoint's write-stage histograms, summed; fails if a node does not answer.
    pub async fn write_stages(&self) -> Result<StageCounts, ClientError> {
        let mut all = StageCounts::default();
        for addr in self.endpoints() {
            let mut admin = self.admin_at(addr)?;
            let answer = admin
                .get_write_stages(self.request(pb::WriteStagesRequest {}))
                .await?
                .into_inner();
            all.add(&answer);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(stage: &str, counts: Vec<u64>, sum_ns: u64) -> pb::WriteStagesResponse {
        pb::WriteStagesResponse {
            node_id: 1,
            stages: vec![pb::StageHistogram {
                stage: stage.into(),
                upper_bounds_us: vec![100, 200, 400],
                counts,
                sum_ns,
            }],
        }
    }

    #[test]
    fn a_window_is_the_difference_of_two_readings() {
        let mut before = StageCounts::default();
        before.add(&answer("commit", vec![5, 0, 0, 0], 250_000));
        let mut after = StageCounts::default();
        after.add(&answer("commit", vec![5, 10, 0, 0], 250_000 + 1_500_000));
        let s = after.since(&before).summaries();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].count, 10);
        assert_eq!(s[0].mean_us, 150.0);
        // The 5th of 10 durations, all between 100 and 200 us: half-way.
        assert_eq!(s[0].p50_us, 150.0);
        assert_eq!(s[0].p99_us, 200.0);
    }

    #[test]
    fn nodes_add_up_and_durations_above_every_bound_take_the_last() {
        let mut all = StageCounts::default();
        all.add(&answer("total", vec![0, 0, 1, 0], 300_000));
        all.add(&answer("total", vec![0, 0, 0, 3], 3_000_000));
        let s = all.summaries();
        assert_eq!(s[0].count, 4);
        assert_eq!(s[0].p99_us, 400.0);
        assert_eq!(s[0].p50_us, 400.0);
        let empty = StageCounts::default();
        assert!(empty.summaries().is_empty());
    }
}
