use std::borrow::Cow;

use backend::key_pairs::KeyPair;
use ec2api::filter::FilterSet;
use ec2api::{DescribeKeyPairsOutput, DescribeKeyPairsRequest, Ec2Error, KeyPairInfo};

use super::{one, tag_list, timestamp, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &["key-pair-id", "key-name", "fingerprint", "key-type"];

fn fields<'a>(pair: &'a KeyPair, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "key-pair-id" => one(&pair.id),
        "key-name" => one(&pair.name),
        "fingerprint" => one(&pair.fingerprint),
        "key-type" => one(&pair.key_type),
        _ => vec![],
    }
}

pub async fn handle(ctx: &Ctx, req: DescribeKeyPairsRequest) -> Result<DescribeKeyPairsOutput, Ec2Error> {
    let filters = FilterSet::new(req.filters.as_deref(), FILTERS)?;
    let account = ctx.account().to_owned();
    let names = req.key_names.unwrap_or_default();
    let ids = req.key_pair_ids.unwrap_or_default();
    // Pairs asked for by name or id are point reads, not a read of every pair of the account.
    let (asked_names, asked_ids) = (names.clone(), ids.clone());
    let (pairs, tags) = ctx
        .snapshot(move |b| {
            let pairs = b.key_pairs_named(&account, &asked_names, &asked_ids)?;
            let tags = b.tags_of(&account, pairs.iter().map(|p| p.id.as_str()))?;
            Ok((pairs, tags))
        })
        .await?;

    super::ensure_found(backend::ResourceKind::KeyPair, &names, |name| pairs.iter().any(|p| &p.name == name))?;
    super::ensure_found(backend::ResourceKind::KeyPair, &ids, |id| pairs.iter().any(|p| &p.id == id))?;
    let include_public = req.include_public_key == Some(true);
    let key_pairs = pairs
        .iter()
        .filter(|p| (names.is_empty() || names.contains(&p.name)) && (ids.is_empty() || ids.contains(&p.id)))
        .map(|p| (p, tags.get(&p.id).map_or(NO_TAGS, Vec::as_slice)))
        .filter(|(p, tags)| filters.matches(&Row { item: *p, tags, fields }))
        .map(|(p, tags)| KeyPairInfo {
            key_pair_id: Some(p.id.clone()),
            key_name: Some(p.name.clone()),
            key_fingerprint: Some(p.fingerprint.clone()),
            key_type: Some(p.key_type.clone()),
            public_key: include_public.then(|| p.public_key.clone()),
            create_time: Some(timestamp(p.created_ms)),
            tags: Some(tag_list(tags)),
        })
        .collect();
    Ok(DescribeKeyPairsOutput { key_pairs: Some(key_pairs) })
}
