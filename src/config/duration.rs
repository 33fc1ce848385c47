//! Durations written the way operators write them: `500ms`, `30s`, `5m`, `1h30m`.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A non-negative duration parsed from a human string such as `30s` or `5m`.
///
/// Bare numbers are refused on purpose: `30` could mean seconds or milliseconds, and a failover
/// timer that is off by a factor of 1000 is a serious bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// No duration is read past this (each setting has its own, lower, maximum): added to a
    /// clock or a date it can never overflow.
    pub const CEILING: Self = Self::from_secs(3650 * 86_400);

    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }

    pub fn get(self) -> std::time::Duration {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

/// Days as the largest unit (`400days`, `1day 2h`, `1h 30m`, `250ms`): months and years are not
/// whole numbers of days, and "1year 18h" reads worse than "366days". Parses back.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if secs == 0 && nanos == 0 {
            return f.write_str("0s");
        }
        let parts = [
            (secs / 86_400, "day"),
            (secs % 86_400 / 3600, "h"),
            (secs % 3600 / 60, "m"),
            (secs % 60, "s"),
            (u64::from(nanos / 1_000_000), "ms"),
            (u64::from(nanos / 1000 % 1000), "us"),
            (u64::from(nanos % 1000), "ns"),
        ];
        let mut first = true;
        for (n, unit) in parts {
            if n == 0 {
                continue;
            }
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            match unit {
                "day" if n == 1 => f.write_str("1day")?,
                "day" => write!(f, "{n}days")?,
                _ => write!(f, "{n}{unit}")?,
            }
        }
        Ok(())
    }
}

/// Why a duration string was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (write it like `500ms`, `30s`, `5m` or `1h`)")]
pub struct ParseDurationError {
    input: String,
    reason: String,
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(ParseDurationError {
                input: s.to_owned(),
                reason: "empty".to_owned(),
            });
        }
        if trimmed.chars().all(|c| c.is_ascii_digit()) {
            return Err(ParseDurationError {
                input: s.to_owned(),
                reason: "a unit is required".to_owned(),
            });
        }
        let d = humantime::parse_duration(trimmed).map_err(|e| ParseDurationError {
            input: s.to_owned(),
            reason: e.to_string(),
        })?;
        if d > Duration::CEILING.0 {
            return Err(ParseDurationError {
                input: s.to_owned(),
                reason: "longer than 3650 days, more than any setting allows".to_owned(),
            });
        }
        Ok(Duration(d))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `30s` or `5m`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "invalid duration {v}: a unit is required (write it like `{v}s` or `{v}ms`)"
                )))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "invalid duration {v}: a unit is required (write it like `30s` or `5m`)"
                )))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "invalid duration {v}: a unit is required (write it like `30s` or `5m`)"
                )))
            }
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!("30s".parse::<Duration>().unwrap(), Duration::from_secs(30));
        assert_eq!("5m".parse::<Duration>().unwrap(), Duration::from_secs(300));
        assert_eq!(
            "1h30m".parse::<Duration>().unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            "250ms".parse::<Duration>().unwrap(),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn refuses_bare_numbers_and_garbage() {
        assert!("30".parse::<Duration>().is_err());
        assert!("".parse::<Duration>().is_err());
        assert!("5x".parse::<Duration>().is_err());
        assert!("-5s".parse::<Duration>().is_err());
        for huge in ["20000y", "580000000000y", "3651days"] {
            let e = huge.parse::<Duration>().unwrap_err().to_string();
            assert!(e.contains(huge), "{e}");
        }
        assert!("3650days".parse::<Duration>().is_ok());
    }

    #[test]
    fn displays_round_trip() {
        for text in ["1m30s", "400days", "1day 2h", "250ms", "0s", "1h 1ms 5ns"] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.to_string().parse::<Duration>().unwrap(), d, "{text}");
        }
        assert_eq!(Duration::from_secs(366 * 86_400).to_string(), "366days");
        assert_eq!(Duration::from_secs(5400).to_string(), "1h 30m");
    }
}
