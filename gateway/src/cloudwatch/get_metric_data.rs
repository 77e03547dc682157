//! GetMetricData: several metric stat queries at once, their datapoints paged by count.

use backend::monitoring::MetricQuery;
use base64::Engine;
use cwapi::{CwError, ErrorCode, GetMetricDataInput, GetMetricDataOutput, MetricDataResult, Output};
use sha2::{Digest, Sha256};

use super::stats::Stat;
use super::{check_period, dimensions, millis, CwCtx};

/// Queries per call and datapoints per page, as CloudWatch allows.
const MAX_QUERIES: usize = 500;
const MAX_DATAPOINTS: i64 = 100_800;
/// Datapoints one call may ask for over all its pages (CloudWatch has no such bound; every
/// page here computes the whole answer, so it bounds a call's memory: about 50 MB).
const MAX_REQUESTED: i64 = 500_000;

/// One query, checked.
struct Asked {
    id: String,
    label: String,
    return_data: bool,
    stat: Stat,
    unit: Option<String>,
    query: MetricQuery,
}

fn check(req: &GetMetricDataInput) -> Result<(Vec<Asked>, i64, i64), CwError> {
    let start_ms = millis(req.start_time.ok_or_else(|| CwError::missing("StartTime"))?);
    let end_ms = millis(req.end_time.ok_or_else(|| CwError::missing("EndTime"))?);
    if start_ms >= end_ms {
        return Err(CwError::invalid_value("The parameter StartTime must be less than the parameter EndTime."));
    }
    let queries = req.metric_data_queries.as_deref().ok_or_else(|| CwError::missing("MetricDataQueries"))?;
    if queries.len() > MAX_QUERIES {
        return Err(CwError::invalid_value(format!(
            "The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}."
        )));
    }
    let mut asked: Vec<Asked> = Vec::with_capacity(queries.len());
    for (i, q) in queries.iter().enumerate() {
        let member = format!("MetricDataQueries.member.{}", i + 1);
        let id = q.id.clone().ok_or_else(|| CwError::missing(&format!("{member}.Id")))?;
        let well_formed = id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            return Err(CwError::invalid_value(format!(
                "Invalid metric data query id {}: it must start with a lowercase letter and hold only letters, digits and underscores.",
                ec2api::error::echo(&id)
            )));
        }
        if asked.iter().any(|a| a.id == id) {
            return Err(CwError::invalid_value(format!("The metric data query id {id} is used more than once.")));
        }
        if q.expression.is_some() {
            return Err(CwError::invalid_value(format!(
                "{member}.Expression: metric math and Metrics Insights queries are not supported; ask with MetricStat."
            )));
        }
        let stat = q.metric_stat.as_ref().ok_or_else(|| {
            CwError::invalid_combination(format!("{member} must specify exactly one of MetricStat and Expression."))
        })?;
        let metric = stat.metric.as_ref().ok_or_else(|| CwError::missing(&format!("{member}.MetricStat.Metric")))?;
        let namespace = metric
            .namespace
            .clone()
            .ok_or_else(|| CwError::missing(&format!("{member}.MetricStat.Metric.Namespace")))?;
        let metric_name = metric
            .metric_name
            .clone()
            .ok_or_else(|| CwError::missing(&format!("{member}.MetricStat.Metric.MetricName")))?;
        let period = stat.period.ok_or_else(|| CwError::missing(&format!("{member}.MetricStat.Period")))?;
        let period = check_period(period, &format!("{member}.MetricStat.Period"))?;
        let stat_name = stat.stat.as_deref().ok_or_else(|| CwError::missing(&format!("{member}.MetricStat.Stat")))?;
        asked.push(Asked {
            label: q.label.clone().unwrap_or_else(|| metric_name.clone()),
            return_data: q.return_data.unwrap_or(true),
            stat: Stat::parse(stat_name, &format!("{member}.MetricStat.Stat"))?,
            unit: stat.unit.clone(),
            query: MetricQuery {
                namespace,
                metric_name,
                dimensions: dimensions(metric.dimensions.clone(), &format!("{member}.MetricStat.Metric.Dimensions"))?,
                start_ms,
                end_ms,
                period_secs: period,
            },
            id,
        });
    }
    // Every page computes the whole answer: its size is bounded up front.
    let requested: i64 = asked
        .iter()
        .filter(|a| a.return_data)
        .map(|a| {
            (end_ms - start_ms).saturating_add(i64::from(a.query.period_secs) * 1000 - 1)
                / (i64::from(a.query.period_secs) * 1000)
        })
        .fold(0i64, i64::saturating_add);
    if requested > MAX_REQUESTED {
        return Err(CwError::invalid_combination(format!(
            "The queries ask for up to {requested} datapoints, more than the {MAX_REQUESTED} one call may ask: ask for fewer queries, longer periods or a shorter range."
        )));
    }
    Ok((asked, start_ms, end_ms))
}

/// What a page token must match: the request minus its token and page size.
fn fingerprint(req: &GetMetricDataInput) -> String {
    let mut same = req.clone();
    same.next_token = None;
    same.max_datapoints = None;
    let digest = Sha256::digest(format!("{same:?}").as_bytes());
    hex::encode(&digest[..8])
}

fn token(fingerprint: &str, offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{fingerprint}:{offset}"))
}

fn offset_of(token: &str, fingerprint: &str) -> Result<usize, CwError> {
    let invalid = || {
        CwError::new(
            ErrorCode::InvalidNextToken,
            "The service couldn't process your request because the NextToken is invalid.",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (print, offset) = text.split_once(':').ok_or_else(invalid)?;
    if print != fingerprint {
        return Err(invalid());
    }
    offset.parse().map_err(|_| invalid())
}

pub async fn handle(ctx: &CwCtx, req: GetMetricDataInput) -> Result<Output, CwError> {
    let (asked, _, _) = check(&req)?;
    let print = fingerprint(&req);
    let mut skip = match req.next_token.as_deref() {
        Some(token) => offset_of(token, &print)?,
        None => 0,
    };
    let page = req.max_datapoints.unwrap_or(MAX_DATAPOINTS).clamp(1, MAX_DATAPOINTS) as usize;
    let ascending = match req.scan_by.as_deref() {
        None | Some("TimestampDescending") => false,
        Some("TimestampAscending") => true,
        Some(other) => {
            return Err(CwError::invalid_value(format!(
                "The value {} for parameter ScanBy is not supported.",
                ec2api::error::echo(other)
            )))
        }
    };
    let (account, admin) = (ctx.principal.account_id.clone(), ctx.principal.admin);
    let queries: Vec<Option<(MetricQuery, Option<String>)>> =
        asked.iter().map(|a| a.return_data.then(|| (a.query.clone(), a.unit.clone()))).collect();
    let answers = ctx
        .call(move |b| {
            queries
                .iter()
                .map(|q| match q {
                    Some((q, unit)) => Ok(super::read(b, &account, admin, q, unit.as_deref())?.0),
                    None => Ok(Vec::new()),
                })
                .collect::<backend::Result<Vec<_>>>()
        })
        .await?;
    let (mut taken, mut more) = (0usize, false);
    let offset = skip;
    let mut results = Vec::new();
    for (asked, points) in asked.iter().zip(answers) {
        if !asked.return_data {
            continue;
        }
        let mut values: Vec<(f64, f64)> =
            points.iter().filter_map(|p| Some((p.at_ms as f64 / 1000.0, asked.stat.of(p)?))).collect();
        if !ascending {
            values.reverse();
        }
        let skipped = skip.min(values.len());
        skip -= skipped;
        let room = page - taken;
        let rest = &values[skipped..];
        let shown = &rest[..rest.len().min(room)];
        taken += shown.len();
        let partial = shown.len() < rest.len();
        more |= partial;
        results.push(MetricDataResult {
            id: Some(asked.id.clone()),
            label: Some(asked.label.clone()),
            timestamps: Some(shown.iter().map(|(t, _)| *t).collect()),
            values: Some(shown.iter().map(|(_, v)| *v).collect()),
            status_code: Some(if partial { "PartialData" } else { "Complete" }.into()),
            messages: None,
        });
    }
    Ok(Output::GetMetricData(GetMetricDataOutput {
        metric_data_results: Some(results),
        next_token: more.then(|| token(&print, offset + taken)),
        messages: Some(Vec::new()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_belong_to_their_request() {
        let token = token("abc", 42);
        assert_eq!(offset_of(&token, "abc").unwrap(), 42);
        assert_eq!(offset_of(&token, "abd").unwrap_err().code, ErrorCode::InvalidNextToken);
        assert_eq!(offset_of("!!", "abc").unwrap_err().code, ErrorCode::InvalidNextToken);
    }
}
