//! Duration flags with bounds: a zero that would loop hot (a checkpoint save at every timer
//! tick), a timeout no connection can meet, or a span so long that a deadline overflows and
//! panics is refused when the flag is parsed, naming the bound, so the service exits 64 instead.

use std::time::Duration;

/// One range a duration flag accepts; `zero` also allows 0 where the flag documents it as off.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    min: Duration,
    max: Duration,
    zero: bool,
}

impl Bounds {
    /// Any value from `min` to `max`, both included.
    pub const fn within(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            zero: false,
        }
    }

    /// 0 (the flag's "off") or any value from `min` to `max`.
    pub const fn off_or(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            zero: true,
        }
    }

    /// A clap value parser: humantime syntax (`500ms`, `1m 30s`), then the bounds.
    pub fn parser(self) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync {
        move |s: &str| self.check(humantime::parse_duration(s).map_err(|e| e.to_string())?)
    }

    /// `d` if it is within the bounds, else why not.
    pub fn check(self, d: Duration) -> Result<Duration, String> {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        if d.is_zero() && self.zero {
            Ok(d)
        } else if d < self.min {
            let off = if self.zero { " (or 0 for off)" } else { "" };
            Err(format!(
                "{} is below the minimum of {}{off}",
                show(d),
                show(self.min)
            ))
        } else if d > self.max {
            Err(format!(
                "{} is above the maximum of {}",
                show(d),
                show(self.max)
            ))
        } else {
            Ok(d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_the_bounds_are_refused_with_the_bound() {
        let p = Bounds::within(Duration::from_millis(100), Duration::from_secs(3600)).parser();
        assert_eq!(p("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(p("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(p("0s").unwrap_err(), "0s is below the minimum of 100ms");
        assert_eq!(p("2h").unwrap_err(), "2h is above the maximum of 1h");
        assert!(
            p("18446744073709551615s")
                .unwrap_err()
                .contains("above the maximum")
        );
        assert!(p("soon").is_err());
    }

    #[test]
    fn zero_passes_only_where_it_means_off() {
        let p = Bounds::off_or(Duration::from_secs(1), Duration::from_secs(60)).parser();
        assert_eq!(p("0s"), Ok(Duration::ZERO));
        assert_eq!(
            p("10ms").unwrap_err(),
            "10ms is below the minimum of 1s (or 0 for off)"
        );
        assert!(
            Bounds::within(Duration::from_secs(1), Duration::from_secs(60))
                .check(Duration::ZERO)
                .is_err()
        );
    }
}
