//! The statistics CloudWatch names, and their values from a period's aggregate.

use backend::monitoring::Datapoint;
use cwapi::CwError;

/// A statistic a request can ask for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    SampleCount,
    Average,
    Sum,
    Minimum,
    Maximum,
    /// `p90`, `p99.9`: exact only where every bucket of the period held one value.
    Percentile(f64),
}

impl Stat {
    /// Parses `Average`, `p99`… `member` names the parameter in the error.
    pub fn parse(text: &str, member: &str) -> Result<Self, CwError> {
        Ok(match text {
            "SampleCount" => Self::SampleCount,
            "Average" => Self::Average,
            "Sum" => Self::Sum,
            "Minimum" => Self::Minimum,
            "Maximum" => Self::Maximum,
            _ => {
                let p = text
                    .strip_prefix('p')
                    .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '.'))
                    .and_then(|p| p.parse::<f64>().ok())
                    .filter(|p| (0.0..=100.0).contains(p));
                match p {
                    Some(p) => Self::Percentile(p),
                    None => {
                        return Err(CwError::invalid_value(format!(
                            "The value {} for parameter {member} is not supported.",
                            ec2api::error::echo(text)
                        )))
                    }
                }
            }
        })
    }

    /// The statistic's value for one period; `None` when it cannot be told (a percentile of
    /// buckets that mixed values).
    pub fn of(self, point: &Datapoint) -> Option<f64> {
        let a = &point.aggregate;
        match self {
            Self::SampleCount => Some(a.count as f64),
            Self::Average => (a.count > 0).then(|| a.sum / a.count as f64),
            Self::Sum => Some(a.sum),
            Self::Minimum => Some(a.min),
            Self::Maximum => Some(a.max),
            Self::Percentile(p) => point.percentile(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backend::monitoring::Aggregate;

    #[test]
    fn statistics_and_percentiles() {
        let point =
            Datapoint { at_ms: 0, aggregate: Aggregate { count: 4, min: 1.0, max: 7.0, sum: 12.0 }, values: None };
        assert_eq!(Stat::parse("Average", "Stat").unwrap().of(&point), Some(3.0));
        assert_eq!(Stat::parse("SampleCount", "Stat").unwrap().of(&point), Some(4.0));
        assert_eq!(Stat::parse("Maximum", "Stat").unwrap().of(&point), Some(7.0));
        assert_eq!(Stat::parse("p99.5", "Stat").unwrap(), Stat::Percentile(99.5));
        assert_eq!(Stat::Percentile(50.0).of(&point), None);
        let exact = Datapoint { values: Some(vec![(1.0, 3), (9.0, 1)]), ..point };
        assert_eq!(Stat::Percentile(50.0).of(&exact), Some(1.0));
        assert_eq!(Stat::Percentile(100.0).of(&exact), Some(9.0));
        for bad in ["average", "p", "p101", "tm99", "p-1", ""] {
            let error = Stat::parse(bad, "Stat").unwrap_err();
            assert_eq!(error.code, cwapi::ErrorCode::InvalidParameterValue, "{bad}");
        }
    }
}
