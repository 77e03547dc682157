//! ListMetrics: the metrics the caller can read, filtered, 500 a page.

use base64::Engine;
use cwapi::{CwError, Dimension, ErrorCode, ListMetricsInput, ListMetricsOutput, Metric, Output};

use super::CwCtx;

const PAGE: usize = 500;
/// CloudWatch lists metrics with data in the last two weeks, or three hours when asked.
const LISTED_MINUTES: u32 = 14 * 24 * 60;
const RECENT_MINUTES: u32 = 3 * 60;

fn invalid_token() -> CwError {
    CwError::new(
        ErrorCode::InvalidNextToken,
        "The service couldn't process your request because the NextToken is invalid.",
    )
}

pub async fn handle(ctx: &CwCtx, req: ListMetricsInput) -> Result<Output, CwError> {
    let within = match req.recently_active.as_deref() {
        None => LISTED_MINUTES,
        Some("PT3H") => RECENT_MINUTES,
        Some(other) => {
            return Err(CwError::invalid_value(format!(
                "The value {} for parameter RecentlyActive is not supported.",
                ec2api::error::echo(other)
            )))
        }
    };
    let filters: Vec<(String, Option<String>)> = req
        .dimensions
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            f.name.map(|n| (n, f.value)).ok_or_else(|| CwError::missing(&format!("Dimensions.member.{}.Name", i + 1)))
        })
        .collect::<Result<_, _>>()?;
    let skip = match req.next_token.as_deref() {
        None => 0,
        Some(token) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()?.strip_prefix("m:")?.parse::<usize>().ok())
            .ok_or_else(invalid_token)?,
    };
    let (account, admin, namespace) = (ctx.principal.account_id.clone(), ctx.principal.admin, req.namespace.clone());
    let all = ctx.call(move |b| b.list_metrics(&account, admin, namespace.as_deref(), within)).await?;
    let matching: Vec<_> = all
        .into_iter()
        .filter(|m| req.metric_name.as_ref().is_none_or(|n| *n == m.metric_name))
        .filter(|m| {
            filters.iter().all(|(name, value)| {
                m.dimensions.iter().any(|(n, v)| n == name && value.as_ref().is_none_or(|value| value == v))
            })
        })
        .collect();
    if skip > matching.len() {
        return Err(invalid_token());
    }
    let page: Vec<Metric> = matching[skip..]
        .iter()
        .take(PAGE)
        .map(|m| Metric {
            namespace: Some(m.namespace.clone()),
            metric_name: Some(m.metric_name.clone()),
            dimensions: Some(
                m.dimensions.iter().map(|(n, v)| Dimension { name: Some(n.clone()), value: Some(v.clone()) }).collect(),
            ),
        })
        .collect();
    let next = skip + page.len();
    let owning_accounts = (req.include_linked_accounts == Some(true))
        .then(|| page.iter().map(|_| ctx.principal.account_id.clone()).collect());
    Ok(Output::ListMetrics(ListMetricsOutput {
        metrics: Some(page),
        next_token: (next < matching.len())
            .then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("m:{next}"))),
        owning_accounts,
    }))
}
