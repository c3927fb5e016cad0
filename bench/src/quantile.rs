//! Nearest-rank quantiles of sorted latency samples: one definition for a run's p50, p99, p99.9
//! and max and for every 100 ms bucket of its series.

/// The `q` quantile (0..=1) of `sorted` (ascending) by nearest rank: the smallest sample with at
/// least `q` of all samples at or below it; `None` when there are no samples.
pub fn nearest_rank(sorted: &[u64], q: f64) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    // `n * q` is an integer in exact arithmetic more often than in floating point (1000 × 0.999
    // must be rank 999, not 1000): a rank within a millionth of an integer is that integer.
    let rank = (n as f64 * q.clamp(0.0, 1.0) - 1e-6).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn p50_p99_p999_and_max_by_nearest_rank() {
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&hundred, 0.5), Some(50));
        assert_eq!(nearest_rank(&hundred, 0.99), Some(99));
        // Fewer than 1,000 samples: p99.9 is the worst one.
        assert_eq!(nearest_rank(&hundred, 0.999), Some(100));
        assert_eq!(nearest_rank(&hundred, 1.0), Some(100));
        let thousand: Vec<u64> = (1..=1000).collect();
        assert_eq!(nearest_rank(&thousand, 0.999), Some(999));
        assert_eq!(nearest_rank(&thousand, 0.99), Some(990));
        let many: Vec<u64> = (1..=20_000).collect();
        assert_eq!(nearest_rank(&many, 0.999), Some(19_980));
        assert_eq!(nearest_rank(&many, 0.5), Some(10_000));
    }

    #[test]
    fn one_sample_empty_and_out_of_range_quantiles() {
        assert_eq!(nearest_rank(&[], 0.5), None);
        assert_eq!(nearest_rank(&[7], 0.999), Some(7));
        assert_eq!(nearest_rank(&[7], 0.0), Some(7));
        assert_eq!(nearest_rank(&[1, 2, 3], 0.0), Some(1));
        assert_eq!(nearest_rank(&[1, 2, 3], 2.0), Some(3));
        assert_eq!(nearest_rank(&[1, 2, 3], f64::NAN), Some(1));
    }
}
