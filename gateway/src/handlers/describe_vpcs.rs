use std::borrow::Cow;

use backend::network::VPC_CIDR;
use ec2api::filter::FilterSet;
use ec2api::{DescribeVpcsOutput, DescribeVpcsRequest, Ec2Error, Vpc, VpcCidrBlockAssociation, VpcCidrBlockState};

use super::{one, tag_list, Row, NO_TAGS};
use crate::context::Ctx;

const FILTERS: &[&str] = &["vpc-id", "cidr", "cidr-block-association.cidr-block", "is-default", "state", "owner-id"];

/// Every account has exactly one VPC, its default one.
struct DefaultVpc {
    id: String,
    owner: String,
}

fn fields<'a>(vpc: &'a DefaultVpc, name: &str) -> Vec<Cow<'a, str>> {
    match name {
        "vpc-id" => one(&vpc.id),
        "cidr" | "cidr-block-association.cidr-block" => one(VPC_CIDR),
        "is-default" => one("true"),
        "state" => one("available"),
        "owner-id" => one(&vpc.owner),
        _ => vec![],
    }
}

pub async fn handle(ctx: &Ctx, req: DescribeVpcsRequest) -> Result<DescribeVpcsOutput, Ec2Error> {
    let filters = FilterSet::new(req.filters.as_deref(), FILTERS)?;
    let vpc = DefaultVpc { id: ctx.principal.default_vpc_id.clone(), owner: ctx.account().to_owned() };
    let ids = req.vpc_ids.unwrap_or_default();
    super::ensure_found(backend::ResourceKind::Vpc, &ids, |id| *id == vpc.id)?;
    let (account, id) = (ctx.account().to_owned(), vpc.id.clone());
    let tags = ctx.call(move |b| b.tags_of(&account, [id.as_str()])).await?;
    let vpc_tags = tags.get(&vpc.id).map_or(NO_TAGS, Vec::as_slice);
    let vpcs = if filters.matches(&Row { item: &vpc, tags: vpc_tags, fields }) {
        vec![Vpc {
            vpc_id: Some(vpc.id.clone()),
            owner_id: Some(vpc.owner.clone()),
            cidr_block: Some(VPC_CIDR.into()),
            cidr_block_association_set: Some(vec![VpcCidrBlockAssociation {
                association_id: vpc.id.strip_prefix("vpc-").map(|hex| format!("vpc-cidr-assoc-{hex}")),
                cidr_block: Some(VPC_CIDR.into()),
                cidr_block_state: Some(VpcCidrBlockState { state: Some("associated".into()), status_message: None }),
            }]),
            dhcp_options_id: Some("default".into()),
            instance_tenancy: Some("default".into()),
            is_default: Some(true),
            state: Some("available".into()),
            tags: (!vpc_tags.is_empty()).then(|| tag_list(vpc_tags)),
            ..Default::default()
        }]
    } else {
        vec![]
    };
    Ok(DescribeVpcsOutput { vpcs: Some(vpcs), next_token: None })
}
