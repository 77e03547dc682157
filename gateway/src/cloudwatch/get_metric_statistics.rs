//! GetMetricStatistics: the statistics of one metric, period by period.

use backend::monitoring::MetricQuery;
use cwapi::{CwError, Datapoint, GetMetricStatisticsInput, GetMetricStatisticsOutput, Output};

use super::stats::Stat;
use super::{check_period, dimensions, millis, CwCtx};

/// At most this many periods per call, as CloudWatch allows.
const MAX_DATAPOINTS: i64 = 1440;

pub async fn handle(ctx: &CwCtx, req: GetMetricStatisticsInput) -> Result<Output, CwError> {
    let namespace = req.namespace.ok_or_else(|| CwError::missing("Namespace"))?;
    let metric_name = req.metric_name.ok_or_else(|| CwError::missing("MetricName"))?;
    let start_ms = millis(req.start_time.ok_or_else(|| CwError::missing("StartTime"))?);
    let end_ms = millis(req.end_time.ok_or_else(|| CwError::missing("EndTime"))?);
    let period = check_period(req.period.ok_or_else(|| CwError::missing("Period"))?, "Period")?;
    let statistics = req.statistics.unwrap_or_default();
    let extended = req.extended_statistics.unwrap_or_default();
    if statistics.is_empty() == extended.is_empty() {
        return Err(CwError::invalid_combination(
            "Must specify either Statistics or ExtendedStatistics, but not both.",
        ));
    }
    let statistics: Vec<(String, Stat)> = statistics
        .into_iter()
        .map(|s| Stat::parse(&s, "Statistics").map(|stat| (s, stat)))
        .collect::<Result<_, _>>()?;
    let extended: Vec<(String, Stat)> = extended
        .into_iter()
        .map(|s| match Stat::parse(&s, "ExtendedStatistics")? {
            stat @ Stat::Percentile(_) => Ok((s, stat)),
            _ => {
                Err(CwError::invalid_value(format!("The value {s} for parameter ExtendedStatistics is not supported.")))
            }
        })
        .collect::<Result<_, _>>()?;
    if start_ms >= end_ms {
        return Err(CwError::invalid_value("The parameter StartTime must be less than the parameter EndTime."));
    }
    let period_ms = i64::from(period) * 1000;
    let requested = (end_ms - start_ms + period_ms - 1) / period_ms;
    if requested > MAX_DATAPOINTS {
        return Err(CwError::invalid_combination(format!(
            "You have requested up to {requested} datapoints, which exceeds the limit of {MAX_DATAPOINTS}. You may reduce the datapoints requested by increasing Period, or decreasing the time range."
        )));
    }
    let query = MetricQuery {
        namespace: namespace.clone(),
        metric_name: metric_name.clone(),
        dimensions: dimensions(req.dimensions, "Dimensions")?,
        start_ms,
        end_ms,
        period_secs: period,
    };
    let (account, admin, asked) = (ctx.principal.account_id.clone(), ctx.principal.admin, req.unit);
    let (points, unit) = ctx.call(move |b| super::read(b, &account, admin, &query, asked.as_deref())).await?;
    let datapoints = points
        .iter()
        .map(|point| {
            let value = |stat: &Stat| stat.of(point);
            let pick = |name: &str| statistics.iter().find(|(n, _)| n == name).and_then(|(_, s)| value(s));
            let percentiles: std::collections::BTreeMap<String, f64> =
                extended.iter().filter_map(|(name, stat)| Some((name.clone(), value(stat)?))).collect();
            Datapoint {
                timestamp: Some(point.at_ms as f64 / 1000.0),
                sample_count: pick("SampleCount"),
                average: pick("Average"),
                sum: pick("Sum"),
                minimum: pick("Minimum"),
                maximum: pick("Maximum"),
                unit: unit.clone(),
                extended_statistics: (!extended.is_empty()).then_some(percentiles),
            }
        })
        .collect();
    Ok(Output::GetMetricStatistics(GetMetricStatisticsOutput {
        label: Some(metric_name),
        datapoints: Some(datapoints),
    }))
}
