//! Latency over time: the events of one measured window in 100 ms buckets of their arrival at the
//! subscriber, so a stall shows when it happened (buckets with no arrivals, then one whose worst
//! latency is the stall's length) instead of vanishing into a percentile.

use std::time::Duration;

use serde::Serialize;

use crate::quantile::nearest_rank;

/// Width of a bucket: fine enough to show a 100 ms stall, coarse enough that a bucket at 1,000
/// events/s holds about 100 events.
pub const BUCKET: Duration = Duration::from_millis(100);

/// Most buckets one window keeps (an hour at 100 ms): arrivals later than that, or a clock step
/// forward, land in the last bucket, so memory stays bounded.
pub const MAX_BUCKETS: usize = 36_000;

/// The buckets of one window, column by column (bucket `i` starts `i × bucket_ms` after the
/// window started).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    /// Width of each bucket, ms.
    pub bucket_ms: u64,
    /// Events that arrived in each bucket.
    pub count: Vec<u64>,
    /// 99th percentile latency of those events, µs (`None`: nothing arrived).
    pub p99_us: Vec<Option<f64>>,
    /// Worst latency of those events, µs (`None`: nothing arrived).
    pub max_us: Vec<Option<f64>>,
}

/// One bucket, for the report's list of the worst ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Start of the bucket after the start of the window, ms.
    pub start_ms: u64,
    /// Events that arrived in it.
    pub count: u64,
    /// Their worst latency, µs.
    pub max_us: f64,
}

impl Series {
    /// Buckets `samples` (arrival time, latency; ns) of a window that started at `start_ns` (the
    /// same clock as the arrivals) into buckets `width` wide.
    pub fn bucket(start_ns: u64, width: Duration, samples: &[(u64, u64)]) -> Self {
        let width_ns = width.as_nanos().clamp(1, u128::from(u64::MAX)) as u64;
        let index = |arrival: u64| {
            ((arrival.saturating_sub(start_ns) / width_ns) as usize).min(MAX_BUCKETS - 1)
        };
        let buckets = samples
            .iter()
            .map(|(a, _)| index(*a) + 1)
            .max()
            .unwrap_or(0);
        let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); buckets];
        for &(arrival, latency) in samples {
            latencies[index(arrival)].push(latency);
        }
        let us = |ns: Option<u64>| ns.map(|n| n as f64 / 1e3);
        let mut s = Series {
            bucket_ms: width.as_millis() as u64,
            ..Series::default()
        };
        for mut l in latencies {
            l.sort_unstable();
            s.count.push(l.len() as u64);
            s.p99_us.push(us(nearest_rank(&l, 0.99)));
            s.max_us.push(us(l.last().copied()));
        }
        s
    }

    /// The `n` buckets with the worst latency, worst first (the earlier one on a tie).
    pub fn worst(&self, n: usize) -> Vec<Bucket> {
        let mut all: Vec<Bucket> = self
            .max_us
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                Some(Bucket {
                    start_ms: i as u64 * self.bucket_ms,
                    count: self.count[i],
                    max_us: (*m)?,
                })
            })
            .collect();
        all.sort_by(|a, b| {
            b.max_us
                .total_cmp(&a.max_us)
                .then(a.start_ms.cmp(&b.start_ms))
        });
        all.truncate(n);
        all
    }

    /// Buckets in which nothing arrived (before the last arrival): each is a stall of at least
    /// one bucket's width.
    pub fn empty(&self) -> usize {
        self.count.iter().filter(|c| **c == 0).count()
    }

    /// The CSV rows of this series as run `run`: `run,start_ms,count,p99_us,max_us` (empty
    /// latencies where nothing arrived).
    pub fn csv_rows(&self, run: usize) -> String {
        let cell = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_default();
        let mut out = String::new();
        for (i, c) in self.count.iter().enumerate() {
            out.push_str(&format!(
                "{run},{},{c},{},{}\n",
                i as u64 * self.bucket_ms,
                cell(self.p99_us[i]),
                cell(self.max_us[i])
            ));
        }
        out
    }
}

/// The header of [`Series::csv_rows`].
pub const CSV_HEADER: &str = "run,start_ms,count,p99_us,max_us\n";

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn arrivals_fall_into_100_ms_buckets_from_the_window_start() {
        let start = 5_000 * MS;
        // Two events in the first bucket, none in the second (a stall), three in the third, the
        // first of which waited out the stall.
        let samples = [
            (start + 10 * MS, MS / 2),
            (start + 99 * MS, MS),
            (start + 200 * MS, 150 * MS),
            (start + 250 * MS, 2 * MS),
            (start + 299 * MS, MS),
        ];
        let s = Series::bucket(start, BUCKET, &samples);
        assert_eq!(s.bucket_ms, 100);
        assert_eq!(s.count, [2, 0, 3]);
        assert_eq!(s.max_us, [Some(1000.0), None, Some(150_000.0)]);
        assert_eq!(s.p99_us, [Some(1000.0), None, Some(150_000.0)]);
        assert_eq!(s.empty(), 1);
        let worst = s.worst(5);
        assert_eq!(worst.len(), 2, "the empty bucket has no latency");
        assert_eq!(
            worst[0],
            Bucket {
                start_ms: 200,
                count: 3,
                max_us: 150_000.0
            }
        );
        assert_eq!(worst[1].start_ms, 0);
        assert_eq!(s.worst(1).len(), 1);
    }

    #[test]
    fn p99_of_a_bucket_is_its_nearest_rank() {
        let start = 0;
        let samples: Vec<(u64, u64)> = (1..=200).map(|l| (start + 1, l * 1_000)).collect();
        let s = Series::bucket(start, BUCKET, &samples);
        assert_eq!(s.count, [200]);
        assert_eq!(s.p99_us, [Some(198.0)]);
        assert_eq!(s.max_us, [Some(200.0)]);
    }

    #[test]
    fn early_and_far_late_arrivals_stay_in_bounds() {
        let start = 10 * MS;
        // Before the start (a clock step back) counts as the first bucket; days later as the last.
        let samples = [(start - MS, 1_000), (start + 86_400_000 * MS, 2_000)];
        let s = Series::bucket(start, BUCKET, &samples);
        assert_eq!(s.count.len(), MAX_BUCKETS);
        assert_eq!((s.count[0], s.count[MAX_BUCKETS - 1]), (1, 1));
        assert_eq!(
            Series::bucket(start, BUCKET, &[]),
            Series {
                bucket_ms: 100,
                ..Series::default()
            }
        );
    }

    #[test]
    fn csv_rows_leave_latency_empty_where_nothing_arrived() {
        let s = Series::bucket(0, BUCKET, &[(MS, 1_500), (250 * MS, 2_000_000)]);
        assert_eq!(
            s.csv_rows(2),
            "2,0,1,1.5,1.5\n2,100,0,,\n2,200,1,2000.0,2000.0\n"
        );
        assert_eq!(CSV_HEADER.split(',').count(), 5);
    }
}
