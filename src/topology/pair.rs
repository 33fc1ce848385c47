//! The region pair: the configured hot region (active in normal operation) and the cold region
//! (the standby that takes over), and "the other region" of either.

use std::fmt;

use crate::config::Config;

/// The two regions of a pair, hot first. Validation guarantees two distinct regions; the pair
/// never changes while the daemon runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegionPair {
    /// `[hot, cold]`.
    regions: [String; 2],
}

impl RegionPair {
    pub fn new(hot: impl Into<String>, cold: impl Into<String>) -> Self {
        Self {
            regions: [hot.into(), cold.into()],
        }
    }

    /// The configuration's `regions` (hot and cold).
    pub fn from_config(config: &Config) -> Self {
        Self::new(config.hot_region(), config.cold_region())
    }

    /// The region configured as hot.
    pub fn hot(&self) -> &str {
        &self.regions[0]
    }

    /// The region configured as cold.
    pub fn cold(&self) -> &str {
        &self.regions[1]
    }

    /// Whether `region` is one of the pair.
    pub fn contains(&self, region: &str) -> bool {
        self.regions.iter().any(|r| r == region)
    }

    /// The other region of the pair; `None` when `region` is not one of it.
    pub fn other(&self, region: &str) -> Option<&str> {
        match region {
            r if r == self.hot() => Some(self.cold()),
            r if r == self.cold() => Some(self.hot()),
            _ => None,
        }
    }

    /// Both regions, hot first.
    pub fn regions(&self) -> [&str; 2] {
        [self.hot(), self.cold()]
    }

    /// `"a or b"`, for messages that ask for one of the pair.
    pub fn either(&self) -> String {
        format!("{} or {}", self.hot(), self.cold())
    }
}

/// `hot/cold`, the engine's region-pair key.
impl fmt::Display for RegionPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.hot(), self.cold())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_region_of_each_and_of_a_stranger() {
        let pair = RegionPair::new("us-east-1", "us-west-2");
        assert_eq!(pair.other("us-east-1"), Some("us-west-2"));
        assert_eq!(pair.other("us-west-2"), Some("us-east-1"));
        assert_eq!(pair.other("eu-west-1"), None);
        assert!(pair.contains("us-west-2") && !pair.contains("eu-west-1"));
        assert_eq!(pair.to_string(), "us-east-1/us-west-2");
        assert_eq!(pair.either(), "us-east-1 or us-west-2");
        assert_eq!(pair.regions(), ["us-east-1", "us-west-2"]);
    }
}
