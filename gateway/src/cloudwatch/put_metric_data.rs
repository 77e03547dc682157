//! PutMetricData: an account's own metrics, in namespaces of its own.

use backend::monitoring::{reserved_namespace, Aggregate, Datum};
use cwapi::{CwError, Output, PutMetricDataInput};

use super::{dimensions, millis, CwCtx};

/// CloudWatch takes data from two weeks back to two hours ahead.
const PAST_MS: i64 = 14 * 86_400_000;
const FUTURE_MS: i64 = 2 * 3_600_000;

fn datum(d: cwapi::MetricDatum, member: &str, now_ms: i64) -> Result<Datum, CwError> {
    let metric_name = d.metric_name.ok_or_else(|| CwError::missing(&format!("{member}.MetricName")))?;
    let mut dimensions = dimensions(d.dimensions, &format!("{member}.Dimensions"))?;
    dimensions.sort();
    if dimensions.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(CwError::invalid_value(format!("{member}.Dimensions names a dimension twice.")));
    }
    let at_ms = d.timestamp.map_or(now_ms, millis);
    if at_ms < now_ms - PAST_MS || at_ms > now_ms + FUTURE_MS {
        return Err(CwError::invalid_value(format!(
            "The parameter {member}.Timestamp must specify a time no more than two weeks in the past and no more than two hours in the future."
        )));
    }
    let both = |a: &str, b: &str| {
        CwError::invalid_combination(format!(
            "The parameters {member}.{a} and {member}.{b} are mutually exclusive and you have specified both."
        ))
    };
    let aggregate = match (d.value, d.values, d.statistic_values) {
        (Some(_), Some(_), _) => return Err(both("Value", "Values")),
        (Some(_), _, Some(_)) => return Err(both("Value", "StatisticValues")),
        (_, Some(_), Some(_)) => return Err(both("Values", "StatisticValues")),
        (Some(value), None, None) => Aggregate::one(value),
        (None, Some(values), None) => {
            let counts = d.counts.unwrap_or_else(|| vec![1.0; values.len()]);
            if counts.len() != values.len() || values.is_empty() {
                return Err(CwError::invalid_value(format!(
                    "{member}.Values and {member}.Counts must be of the same, non-zero length."
                )));
            }
            let mut total: Option<Aggregate> = None;
            for (value, count) in values.into_iter().zip(counts) {
                let count = samples(count, &format!("{member}.Counts"))?;
                if count == 0 {
                    continue; // a value that did not occur
                }
                let one = Aggregate { count, min: value, max: value, sum: value * count as f64 };
                match &mut total {
                    Some(t) => t.merge(&one),
                    None => total = Some(one),
                }
            }
            total.ok_or_else(|| CwError::invalid_value(format!("{member}.Counts counts no sample.")))?
        }
        (None, None, Some(set)) => {
            let field = |v: Option<f64>, name: &str| {
                v.ok_or_else(|| CwError::missing(&format!("{member}.StatisticValues.{name}")))
            };
            let (count, sum) = (field(set.sample_count, "SampleCount")?, field(set.sum, "Sum")?);
            let (min, max) = (field(set.minimum, "Minimum")?, field(set.maximum, "Maximum")?);
            let count = samples(count, &format!("{member}.StatisticValues.SampleCount"))?;
            if count == 0 || min > max {
                return Err(CwError::invalid_value(format!(
                    "{member}.StatisticValues must have a SampleCount of at least 1 and a Minimum no greater than its Maximum."
                )));
            }
            Aggregate { count, min, max, sum }
        }
        (None, None, None) => {
            return Err(CwError::invalid_combination(format!(
                "{member} must specify one of Value, Values and StatisticValues."
            )))
        }
    };
    if !aggregate.sum.is_finite() {
        return Err(CwError::invalid_value(format!("{member}: the values' sum is too large.")));
    }
    Ok(Datum { metric_name, dimensions, at_ms, aggregate, unit: d.unit })
}

/// A count of samples as a whole number: rounded, at most 2^53 (where doubles stop counting
/// one by one), never negative.
fn samples(count: f64, member: &str) -> Result<u64, CwError> {
    if !(0.0..=9_007_199_254_740_992.0).contains(&count) {
        return Err(CwError::invalid_value(format!("{member} must be between 0 and 2^53.")));
    }
    Ok(count.round() as u64)
}

pub async fn handle(ctx: &CwCtx, req: PutMetricDataInput) -> Result<Output, CwError> {
    let namespace = req.namespace.ok_or_else(|| CwError::missing("Namespace"))?;
    if reserved_namespace(&namespace) {
        return Err(CwError::invalid_value(format!(
            "The value {} for parameter Namespace is invalid: AWS/ and Stratus/ namespaces are the cloud's own.",
            ec2api::error::echo(&namespace)
        )));
    }
    if req.entity_metric_data.is_some_and(|e| !e.is_empty()) {
        return Err(CwError::invalid_value("EntityMetricData is not supported; send MetricData."));
    }
    let data = req.metric_data.unwrap_or_default();
    if data.is_empty() {
        return Err(CwError::missing("MetricData"));
    }
    let now = backend::now_ms();
    let data: Vec<Datum> = data
        .into_iter()
        .enumerate()
        .map(|(i, d)| datum(d, &format!("MetricData.member.{}", i + 1), now))
        .collect::<Result<_, _>>()?;
    let account = ctx.principal.account_id.clone();
    ctx.call(move |b| b.put_metric_data(&account, &namespace, data)).await?;
    Ok(Output::PutMetricData)
}
