//! VPCs, their subnets, internet gateways and route tables: the records of the accounts'
//! networks (issue 16). What OVN makes of them is [`crate::vpc_network`].
//!
//! 1. **Every account has its own default VPC**, `172.31.0.0/16` as on AWS, made with the
//!    account ([`ensure_default_network`]; accounts older than these records get theirs at the
//!    first start, [`Backend::ensure_default_networks`]). It comes as AWS makes it: one default
//!    subnet per zone (`172.31.(16·n).0/20` for the n-th zone, ids derived from account and
//!    zone, so the subnets of instances launched before the records still resolve), an
//!    attached internet gateway, and a main route table with the local route and
//!    `0.0.0.0/0` to that gateway. The account record names it (`default_vpc_id`, empty once
//!    deleted until `CreateDefaultVpc`).
//! 2. Any other VPC (`CreateVpc`) starts with a main route table holding only the local route
//!    and its `default` security group. Its addresses are its own: two VPCs may use the same
//!    CIDR, in one account or two ([`crate::network::lease_scope`]).
//! 3. Subnets lie inside their VPC, never overlap one another, are /16 to /28, and keep AWS's
//!    five reserved addresses. Route tables hold the local route (which cannot go) and routes
//!    to an internet gateway attached to the same VPC, a network interface or an instance of
//!    it; a subnet without an association of its own follows the main table.
//! 4. Nothing goes while something depends on it: a VPC with subnets, a gateway, groups or
//!    tables of its own; a subnet with instances; an attached gateway; an associated or main
//!    table. Each answer is EC2's `DependencyViolation`.
//!
//! All checks run inside the writing transaction, so two racing requests cannot both pass.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use storage::tables::{
    ACCOUNTS, INSTANCES, INTERNET_GATEWAYS, LEASES, NAT_GATEWAYS, NETWORK_INTERFACES, ROUTE_TABLES, SECURITY_GROUPS,
    SECURITY_GROUP_NAMES, SUBNETS, VPCS,
};
use storage::{
    InstanceState, InternetGatewayRecord, Reads, RouteRecord, RouteTableAssociationRecord, RouteTableRecord,
    RouteTarget, SubnetRecord, VpcRecord, WriteTx,
};

use crate::addresses::PublicNetwork;
use crate::topology::Topology;
use crate::{ids, invalid, now_ms, security_groups, tags, Backend, Error, ResourceKind, Result};

/// Every default VPC's CIDR, in every account (addresses overlap between accounts).
pub const DEFAULT_VPC_CIDR: &str = "172.31.0.0/16";
/// The default subnets' size.
const DEFAULT_SUBNET_PREFIX: u8 = 20;
/// What a VPC's or subnet's IPv4 block may measure, as on AWS.
const PREFIXES: std::ops::RangeInclusive<u8> = 16..=28;

/// An IPv4 CIDR as network and prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    /// Reads `a.b.c.d/n`; host bits must be clear. `None` when it is no CIDR.
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = text.trim().split_once('/')?;
        let network: Ipv4Addr = address.parse().ok()?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
        (u32::from(network) & !Self::mask(prefix) == 0).then_some(Self { network, prefix })
    }

    fn mask(prefix: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
    }

    fn first(self) -> u32 {
        u32::from(self.network)
    }

    fn last(self) -> u32 {
        self.first() | !Self::mask(self.prefix)
    }

    pub fn contains(self, inner: Cidr) -> bool {
        inner.prefix >= self.prefix && inner.first() & Self::mask(self.prefix) == self.first()
    }

    pub fn overlaps(self, other: Cidr) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A CIDR parameter, or EC2's `InvalidParameterValue` naming it (`cidrBlock`).
fn cidr_parameter(text: &str, name: &'static str, wire: &str) -> Result<Cidr> {
    Cidr::parse(text).ok_or_else(|| {
        invalid(name, format!("Value ({text}) for parameter {wire} is invalid. This is not a valid CIDR block."))
    })
}

/// The `n`-th zone's default subnet.
fn default_subnet_cidr(zone_index: usize) -> Option<Cidr> {
    let third = u8::try_from(16 * zone_index).ok()?;
    Some(Cidr { network: Ipv4Addr::new(172, 31, third, 0), prefix: DEFAULT_SUBNET_PREFIX })
}

/// The zones of the topology, in order (the n-th gets the n-th default subnet).
fn zones(topology: &Topology) -> Vec<String> {
    topology.regions.iter().flat_map(|r| r.zones.iter().cloned()).collect()
}

fn key(account: &str, id: &str) -> String {
    format!("{account}/{id}")
}

fn local_route(cidr: &str) -> RouteRecord {
    RouteRecord { destination: cidr.to_owned(), target: RouteTarget::Local, origin: "CreateRouteTable".into() }
}

/// The default VPC's id of `account`, making the VPC (and its subnets, gateway and main route
/// table) if the account should have one and has none yet. An account that deleted its default
/// VPC has none (`None`). Accounts without a record (tests, benchmarks) get `hint`. Its
/// gateway's address comes from `public`.
pub(crate) fn ensure_default_network(
    tx: &WriteTx,
    topology: &Topology,
    account: &str,
    hint: &str,
    public: PublicNetwork,
) -> Result<Option<String>> {
    let vpc_id = match tx.get(&ACCOUNTS, account)? {
        Some(record) if record.default_vpc_id.is_empty() => return Ok(None),
        Some(record) => record.default_vpc_id,
        None => hint.to_owned(),
    };
    if tx.get(&VPCS, &key(account, &vpc_id))?.is_none() {
        make_default_network(tx, topology, account, &vpc_id, public)?;
    }
    Ok(Some(vpc_id))
}

/// A default VPC as AWS makes it: its guests get public addresses by default and its gateway
/// takes one of `public` for the VPC's router, when the pool has one left (without it the VPC
/// works, but nothing of it reaches the public network).
fn make_default_network(
    tx: &WriteTx,
    topology: &Topology,
    account: &str,
    vpc_id: &str,
    public: PublicNetwork,
) -> Result<()> {
    let created_ms = now_ms();
    insert_vpc(
        tx,
        VpcRecord {
            id: vpc_id.to_owned(),
            account: account.to_owned(),
            cidr: DEFAULT_VPC_CIDR.into(),
            default: true,
            dns_support: true,
            dns_hostnames: true,
            address_usage_metrics: false,
            tenancy: "default".into(),
            created_ms,
            on_bridge: Some(false),
        },
        Some(ids::derived_id("rtb", &[account, vpc_id])),
    )?;
    for (index, zone) in zones(topology).iter().enumerate() {
        make_default_subnet(tx, account, vpc_id, zone, index)?;
    }
    let gateway = ids::derived_id("igw", &[account, vpc_id]);
    let public_ip = gateway_address(tx, &public, &key(account, &gateway))?;
    tx.insert(
        &INTERNET_GATEWAYS,
        &key(account, &gateway),
        &InternetGatewayRecord {
            id: gateway.clone(),
            account: account.to_owned(),
            vpc_id: Some(vpc_id.to_owned()),
            created_ms,
            public_ip,
        },
    )?;
    let table_key = key(account, &ids::derived_id("rtb", &[account, vpc_id]));
    if let Some(mut table) = tx.get(&ROUTE_TABLES, &table_key)? {
        table.routes.push(RouteRecord {
            destination: "0.0.0.0/0".into(),
            target: RouteTarget::InternetGateway(gateway),
            origin: "CreateRoute".into(),
        });
        tx.insert(&ROUTE_TABLES, &table_key, &table)?;
    }
    Ok(())
}

fn make_default_subnet(tx: &WriteTx, account: &str, vpc_id: &str, zone: &str, index: usize) -> Result<SubnetRecord> {
    let cidr = default_subnet_cidr(index)
        .ok_or_else(|| invalid("AvailabilityZone", format!("Zone {zone} has no room in the default VPC")))?;
    let subnet = SubnetRecord {
        id: ids::derived_id("subnet", &[account, zone]),
        account: account.to_owned(),
        vpc_id: vpc_id.to_owned(),
        cidr: cidr.to_string(),
        zone: zone.to_owned(),
        default_for_az: true,
        // As AWS does.
        map_public_ip_on_launch: true,
        created_ms: now_ms(),
    };
    tx.insert(&SUBNETS, &key(account, &subnet.id), &subnet)?;
    Ok(subnet)
}

/// Stores a new VPC with its main route table (`table_id`, or a new id) and `default` group.
fn insert_vpc(tx: &WriteTx, vpc: VpcRecord, table_id: Option<String>) -> Result<()> {
    let table_id = table_id.unwrap_or_else(|| ids::resource_id("rtb"));
    let table = RouteTableRecord {
        id: table_id.clone(),
        account: vpc.account.clone(),
        vpc_id: vpc.id.clone(),
        routes: vec![local_route(&vpc.cidr)],
        associations: vec![RouteTableAssociationRecord {
            id: ids::derived_id("rtbassoc", &[&vpc.account, &table_id, "main"]),
            subnet_id: None,
        }],
        created_ms: vpc.created_ms,
    };
    tx.insert(&ROUTE_TABLES, &key(&vpc.account, &table.id), &table)?;
    security_groups::ensure_default_group(tx, &vpc.account, &vpc.id)?;
    tx.insert(&VPCS, &key(&vpc.account, &vpc.id), &vpc)?;
    Ok(())
}

/// The leases a Stratus whose default VPCs shared the hosts' bridge left without a scope (that
/// bridge was one address space): the address is the whole key. Such keys start with a digit,
/// scoped ones with `vpc-`, so nine short scans find them all.
fn unscoped_leases(tx: &impl Reads) -> Result<Vec<(String, storage::LeaseRecord)>> {
    let mut found = Vec::new();
    for digit in '1'..='9' {
        found.extend(tx.scan(&LEASES, &digit.to_string())?.into_iter().filter(|(k, _)| !k.contains('/')));
    }
    Ok(found)
}

/// The VPC of a lease's holder, by its key: an instance, an interface of its own or a NAT
/// gateway; `None` when it is gone.
fn holder_vpc(tx: &impl Reads, holder: &str) -> Result<Option<String>> {
    let Some((_, id)) = holder.split_once('/') else { return Ok(None) };
    Ok(match ResourceKind::of_id(id) {
        Some(ResourceKind::Instance) => tx.get(&INSTANCES, holder)?.map(|i| i.vpc_id),
        Some(ResourceKind::NetworkInterface) => tx.get(&NETWORK_INTERFACES, holder)?.map(|i| i.vpc_id),
        Some(ResourceKind::NatGateway) => tx.get(&NAT_GATEWAYS, holder)?.map(|n| n.vpc_id),
        _ => None,
    })
}

/// Moves what the hosts' old bridge left into the VPCs' own address spaces, in one transaction:
/// every unscoped lease under its holder's VPC (a lease whose holder is gone goes), and every
/// default VPC made on the bridge to public addresses at launch, as on AWS. Answers the running
/// instances that were on the bridge: their NIC stays on it until they stop and start.
fn move_off_the_bridge(tx: &WriteTx) -> Result<Vec<String>> {
    let mut moved = BTreeSet::new();
    for (address, lease) in unscoped_leases(tx)? {
        tx.remove(&LEASES, &address)?;
        match holder_vpc(tx, &lease.instance_key)? {
            Some(vpc_id) => {
                let scoped = format!("{}{address}", crate::network::lease_scope(&vpc_id));
                // Taken in the VPC's own space meanwhile: that one stays, this one is dropped.
                if tx.get(&LEASES, &scoped)?.is_none() {
                    tx.insert(&LEASES, &scoped, &lease)?;
                }
                moved.insert(lease.instance_key);
            }
            None => {
                tracing::info!(%address, holder = %lease.instance_key, "a lease of the old bridge without a holder went")
            }
        }
    }
    for (vpc_key, mut vpc) in tx.scan(&VPCS, "")? {
        if !vpc.shares_bridge() {
            continue;
        }
        vpc.on_bridge = Some(false);
        tx.insert(&VPCS, &vpc_key, &vpc)?;
        for (subnet_key, mut subnet) in tx.scan(&SUBNETS, &format!("{}/", vpc.account))? {
            if subnet.vpc_id == vpc.id && subnet.default_for_az {
                subnet.map_public_ip_on_launch = true;
                tx.insert(&SUBNETS, &subnet_key, &subnet)?;
            }
        }
        tracing::info!(account = %vpc.account, vpc_id = %vpc.id, "a default VPC of the hosts' old bridge is a network of its own now");
    }
    let mut running = Vec::new();
    for holder in moved {
        if let Some(instance) = tx.get(&INSTANCES, &holder)?.filter(|i| i.state == InstanceState::Running) {
            running.push(instance.id);
        }
    }
    Ok(running)
}

/// A public address for a default VPC's router, or `None` (logged) when the pool has none left.
fn gateway_address(tx: &WriteTx, network: &PublicNetwork, holder: &str) -> Result<Option<String>> {
    match crate::addresses::take_public_address(tx, network, holder) {
        Ok(address) => Ok(Some(address.to_string())),
        Err(Error::AddressLimitExceeded) => {
            tracing::warn!(holder, "the public pool is exhausted: a default VPC's router has no public address");
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

pub(crate) fn vpc_in(tx: &impl Reads, account: &str, id: &str) -> Result<VpcRecord> {
    tx.get(&VPCS, &key(account, id))?
        .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Vpc, id: id.to_owned() })
}

pub(crate) fn subnet_in(tx: &impl Reads, account: &str, id: &str) -> Result<SubnetRecord> {
    tx.get(&SUBNETS, &key(account, id))?
        .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Subnet, id: id.to_owned() })
}

fn gateway_in(tx: &impl Reads, account: &str, id: &str) -> Result<InternetGatewayRecord> {
    tx.get(&INTERNET_GATEWAYS, &key(account, id))?
        .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::InternetGateway, id: id.to_owned() })
}

fn table_in(tx: &impl Reads, account: &str, id: &str) -> Result<RouteTableRecord> {
    tx.get(&ROUTE_TABLES, &key(account, id))?
        .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::RouteTable, id: id.to_owned() })
}

fn tables_of_vpc(tx: &impl Reads, account: &str, vpc_id: &str) -> Result<Vec<RouteTableRecord>> {
    Ok(tx
        .scan(&ROUTE_TABLES, &format!("{account}/"))?
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| t.vpc_id == vpc_id)
        .collect())
}

/// The route table holding association `id`.
fn table_with_association(tx: &impl Reads, account: &str, id: &str) -> Result<RouteTableRecord> {
    tx.scan(&ROUTE_TABLES, &format!("{account}/"))?
        .into_iter()
        .map(|(_, t)| t)
        .find(|t| t.associations.iter().any(|a| a.id == id))
        .ok_or_else(|| Error::AssociationNotFound(id.to_owned()))
}

fn dependency(kind: &str, id: &str) -> Error {
    Error::DependencyViolation(format!("The {kind} '{id}' has dependencies and cannot be deleted."))
}

/// What ModifyVpcAttribute changes (one attribute per call, as on AWS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpcAttribute {
    DnsSupport(bool),
    DnsHostnames(bool),
    AddressUsageMetrics(bool),
}

/// A route's target as a request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    Gateway(String),
    NatGateway(String),
    NetworkInterface(String),
    Instance(String),
    /// ReplaceRoute's `LocalTarget`: back to the local route.
    Local,
}

impl Backend {
    /// Makes sure every account that should have a default VPC has its records (accounts made
    /// before VPCs were records), moves default VPCs made on the hosts' bridge (by a Stratus
    /// before every VPC was on OVN) into address spaces of their own, and gives a default VPC's
    /// gateway made while the public pool was empty another try. Run once at start.
    pub fn ensure_default_networks(&self) -> Result<()> {
        let public = self.public_network();
        // Read first: a start with nothing to do commits nothing.
        let (missing, on_bridge, unscoped, without_address) = self.store().read(|tx| {
            let mut missing = Vec::new();
            for (id, account) in tx.scan(&ACCOUNTS, "")? {
                let vpc_id = &account.default_vpc_id;
                if !vpc_id.is_empty() && tx.get(&VPCS, &key(&id, vpc_id))?.is_none() {
                    missing.push((id, account.default_vpc_id));
                }
            }
            let vpcs = tx.scan(&VPCS, "")?;
            let on_bridge = vpcs.iter().any(|(_, v)| v.shares_bridge());
            let defaults: BTreeSet<String> =
                vpcs.iter().filter(|(_, v)| v.default).map(|(_, v)| key(&v.account, &v.id)).collect();
            let without_address: Vec<String> = tx
                .scan(&INTERNET_GATEWAYS, "")?
                .into_iter()
                .filter(|(_, g)| g.public_ip.is_none())
                .filter(|(_, g)| g.vpc_id.as_ref().is_some_and(|v| defaults.contains(&key(&g.account, v))))
                .map(|(k, _)| k)
                .collect();
            Ok::<_, Error>((missing, on_bridge, !unscoped_leases(tx)?.is_empty(), without_address))
        })?;
        for (id, vpc_id) in missing {
            self.store().write(|tx| ensure_default_network(tx, self.topology(), &id, &vpc_id, public))?;
        }
        if on_bridge || unscoped {
            let running = self.store().write(move_off_the_bridge)?;
            if !running.is_empty() {
                tracing::warn!(
                    instances = %running.join(" "),
                    "these guests still run on the hosts' old bridge, where their security groups are no longer \
                     updated and nothing answers their DHCP or metadata: stop and start each to plug it into OVN"
                );
            }
        }
        // Default VPCs' gateways made while the public pool was empty try again.
        if !without_address.is_empty() {
            self.store().write(|tx| {
                for gateway_key in &without_address {
                    let Some(mut gateway) = tx.get(&INTERNET_GATEWAYS, gateway_key)? else { continue };
                    if gateway.public_ip.is_none() {
                        gateway.public_ip = gateway_address(tx, &public, gateway_key)?;
                        tx.insert(&INTERNET_GATEWAYS, gateway_key, &gateway)?;
                    }
                }
                Ok::<_, Error>(())
            })?;
        }
        Ok(())
    }

    /// The account's default VPC, made first if it should exist and does not.
    pub fn default_vpc(&self, account: &str, hint: &str) -> Result<Option<String>> {
        let known = self.store().read(|tx| {
            Ok::<_, Error>(match tx.get(&ACCOUNTS, account)? {
                Some(record) if record.default_vpc_id.is_empty() => Some(None),
                Some(record) => tx.get(&VPCS, &key(account, &record.default_vpc_id))?.map(|v| Some(v.id)),
                None => tx.get(&VPCS, &key(account, hint))?.map(|v| Some(v.id)),
            })
        })?;
        match known {
            Some(answer) => Ok(answer),
            None => self
                .store()
                .write(|tx| ensure_default_network(tx, self.topology(), account, hint, self.public_network())),
        }
    }

    pub fn vpcs(&self, account: &str) -> Result<Vec<VpcRecord>> {
        Ok(self.store().read(|tx| tx.scan(&VPCS, &format!("{account}/")))?.into_iter().map(|(_, v)| v).collect())
    }

    pub fn vpc(&self, account: &str, id: &str) -> Result<VpcRecord> {
        self.store().read(|tx| vpc_in(tx, account, id))
    }

    /// CreateVpc.
    pub fn create_vpc(
        &self,
        account: &str,
        cidr: &str,
        tenancy: Option<&str>,
        tags: &[(String, String)],
    ) -> Result<VpcRecord> {
        let block = cidr_parameter(cidr, "CidrBlock", "cidrBlock")?;
        // Neither the public network's addresses nor link-local ones (the metadata service's)
        // may be a VPC's private addresses.
        let link_local = Cidr { network: Ipv4Addr::new(169, 254, 0, 0), prefix: 16 };
        if !PREFIXES.contains(&block.prefix) || block.overlaps(self.public_network().cidr) || block.overlaps(link_local)
        {
            return Err(Error::VpcRange(block.to_string()));
        }
        let tenancy = tenancy.unwrap_or("default");
        if !["default", "dedicated"].contains(&tenancy) {
            return Err(invalid(
                "InstanceTenancy",
                format!(
                    "Value ({tenancy}) for parameter instanceTenancy is invalid. Expected one of: default, dedicated."
                ),
            ));
        }
        tags::validate_tags(tags)?;
        let vpc = VpcRecord {
            id: ids::resource_id("vpc"),
            account: account.to_owned(),
            cidr: block.to_string(),
            default: false,
            dns_support: true,
            dns_hostnames: false,
            address_usage_metrics: false,
            tenancy: tenancy.to_owned(),
            created_ms: now_ms(),
            on_bridge: None,
        };
        self.store().write(|tx| {
            insert_vpc(tx, vpc.clone(), None)?;
            tags::put_tags(tx, account, &vpc.id, tags)
        })?;
        Ok(vpc)
    }

    /// CreateDefaultVpc: only when the account has none.
    pub fn create_default_vpc(&self, account: &str) -> Result<VpcRecord> {
        let vpc_id = self.store().write(|tx| {
            let mut record = tx.get(&ACCOUNTS, account)?.ok_or(Error::NoDefaultVpc)?;
            if !record.default_vpc_id.is_empty() && tx.get(&VPCS, &key(account, &record.default_vpc_id))?.is_some() {
                return Err(Error::DefaultVpcExists);
            }
            record.default_vpc_id = ids::resource_id("vpc");
            tx.insert(&ACCOUNTS, account, &record)?;
            make_default_network(tx, self.topology(), account, &record.default_vpc_id, self.public_network())?;
            Ok(record.default_vpc_id)
        })?;
        self.forget_principals();
        self.vpc(account, &vpc_id)
    }

    /// DeleteVpc: only an empty one (its main table and `default` group go with it).
    pub fn delete_vpc(&self, account: &str, id: &str) -> Result<()> {
        self.store().write(|tx| {
            let vpc = vpc_in(tx, account, id)?;
            let subnets = tx.scan(&SUBNETS, &format!("{account}/"))?;
            let gateways = tx.scan(&INTERNET_GATEWAYS, &format!("{account}/"))?;
            let groups = tx.scan(&SECURITY_GROUPS, &format!("{account}/"))?;
            let tables = tables_of_vpc(tx, account, id)?;
            if subnets.iter().any(|(_, s)| s.vpc_id == id)
                || gateways.iter().any(|(_, g)| g.vpc_id.as_deref() == Some(id))
                || groups.iter().any(|(_, g)| g.vpc_id == id && !g.default)
                || tables.iter().any(|t| !t.main())
            {
                return Err(dependency("vpc", id));
            }
            for table in &tables {
                tx.remove(&ROUTE_TABLES, &key(account, &table.id))?;
                tags::drop_tags(tx, account, &table.id)?;
            }
            for (group_key, group) in groups.iter().filter(|(_, g)| g.vpc_id == id) {
                tx.remove(&SECURITY_GROUPS, group_key)?;
                tx.remove(&SECURITY_GROUP_NAMES, &format!("{account}/{id}/{}", group.name))?;
                tags::drop_tags(tx, account, &group.id)?;
                for rule in &group.rules {
                    tags::drop_tags(tx, account, &rule.id)?;
                }
            }
            tx.remove(&VPCS, &key(account, id))?;
            tags::drop_tags(tx, account, id)?;
            if vpc.default {
                if let Some(mut record) = tx.get(&ACCOUNTS, account)? {
                    record.default_vpc_id = String::new();
                    tx.insert(&ACCOUNTS, account, &record)?;
                }
            }
            Ok(())
        })?;
        self.forget_principals();
        Ok(())
    }

    /// ModifyVpcAttribute. DNS hostnames need DNS support, as on AWS.
    pub fn modify_vpc(&self, account: &str, id: &str, change: VpcAttribute) -> Result<()> {
        self.store().write(|tx| {
            let mut vpc = vpc_in(tx, account, id)?;
            match change {
                VpcAttribute::DnsSupport(on) => vpc.dns_support = on,
                VpcAttribute::DnsHostnames(on) => vpc.dns_hostnames = on,
                VpcAttribute::AddressUsageMetrics(on) => vpc.address_usage_metrics = on,
            }
            if vpc.dns_hostnames && !vpc.dns_support {
                return Err(invalid(
                    "EnableDnsHostnames",
                    "Cannot enable DNS hostnames when DNS support is disabled for the VPC.",
                ));
            }
            tx.insert(&VPCS, &key(account, id), &vpc)?;
            Ok(())
        })
    }

    pub fn subnet_records(&self, account: &str) -> Result<Vec<SubnetRecord>> {
        Ok(self.store().read(|tx| tx.scan(&SUBNETS, &format!("{account}/")))?.into_iter().map(|(_, s)| s).collect())
    }

    /// The zone a request names by name or id, or the first zone when it names none.
    fn zone_named(&self, zone: Option<&str>, zone_id: Option<&str>) -> Result<String> {
        let all = zones(self.topology());
        let found = match (zone, zone_id) {
            (Some(name), _) => all.iter().find(|z| *z == name),
            (None, Some(id)) => self
                .topology()
                .regions
                .iter()
                .flat_map(|r| r.zones.iter().map(move |z| (crate::topology::zone_id(&r.name, z), z)))
                .find(|(zid, _)| zid == id)
                .map(|(_, z)| z),
            (None, None) => all.first(),
        };
        found.cloned().ok_or_else(|| {
            let given = zone.or(zone_id).unwrap_or_default();
            invalid(
                "AvailabilityZone",
                format!(
                    "Value ({given}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {}.",
                    all.join(", ")
                ),
            )
        })
    }

    /// CreateSubnet.
    pub fn create_subnet(
        &self,
        account: &str,
        vpc_id: &str,
        cidr: &str,
        zone: Option<&str>,
        zone_id: Option<&str>,
        tags: &[(String, String)],
    ) -> Result<SubnetRecord> {
        let block = cidr_parameter(cidr, "CidrBlock", "cidrBlock")?;
        let zone = self.zone_named(zone, zone_id)?;
        tags::validate_tags(tags)?;
        self.store().write(|tx| {
            let vpc = vpc_in(tx, account, vpc_id)?;
            let vpc_block = Cidr::parse(&vpc.cidr).ok_or_else(|| Error::Io(format!("VPC {vpc_id} has no CIDR")))?;
            if !PREFIXES.contains(&block.prefix) || !vpc_block.contains(block) {
                return Err(Error::SubnetRange(block.to_string()));
            }
            let taken = tx.scan(&SUBNETS, &format!("{account}/"))?;
            if taken
                .iter()
                .filter(|(_, s)| s.vpc_id == vpc_id)
                .any(|(_, s)| Cidr::parse(&s.cidr).is_some_and(|c| c.overlaps(block)))
            {
                return Err(Error::SubnetConflict(block.to_string()));
            }
            let subnet = SubnetRecord {
                id: ids::resource_id("subnet"),
                account: account.to_owned(),
                vpc_id: vpc_id.to_owned(),
                cidr: block.to_string(),
                zone: zone.clone(),
                default_for_az: false,
                map_public_ip_on_launch: false,
                created_ms: now_ms(),
            };
            tx.insert(&SUBNETS, &key(account, &subnet.id), &subnet)?;
            tags::put_tags(tx, account, &subnet.id, tags)?;
            Ok(subnet)
        })
    }

    /// CreateDefaultSubnet: the zone's default subnet in the default VPC, when it has none.
    pub fn create_default_subnet(
        &self,
        account: &str,
        zone: Option<&str>,
        zone_id: Option<&str>,
    ) -> Result<SubnetRecord> {
        if zone.is_none() && zone_id.is_none() {
            return Err(Error::MissingParameter("availabilityZone".into()));
        }
        let zone = self.zone_named(zone, zone_id)?;
        let index = zones(self.topology()).iter().position(|z| *z == zone).unwrap_or_default();
        self.store().write(|tx| {
            let record = tx.get(&ACCOUNTS, account)?;
            let vpc_id = record.map(|r| r.default_vpc_id).filter(|v| !v.is_empty()).ok_or(Error::NoDefaultVpc)?;
            let subnets = tx.scan(&SUBNETS, &format!("{account}/"))?;
            if subnets.iter().any(|(_, s)| s.vpc_id == vpc_id && s.zone == zone && s.default_for_az) {
                return Err(Error::DefaultSubnetExists(zone.clone()));
            }
            let cidr = default_subnet_cidr(index).map(|c| c.to_string()).unwrap_or_default();
            if subnets.iter().any(|(_, s)| s.vpc_id == vpc_id && s.cidr == cidr) {
                return Err(Error::SubnetConflict(cidr));
            }
            make_default_subnet(tx, account, &vpc_id, &zone, index)
        })
    }

    /// DeleteSubnet: only without instances; its route table association goes with it.
    pub fn delete_subnet(&self, account: &str, id: &str) -> Result<()> {
        self.store().write(|tx| {
            subnet_in(tx, account, id)?;
            if tx.any_live_instance_with(account, "subnet-id", id, |_| true)?
                || crate::nat_gateways::in_subnet(tx, account, id)?
                || crate::interfaces::in_subnet(tx, account, id)?
            {
                return Err(dependency("subnet", id));
            }
            for (table_key, mut table) in tx.scan(&ROUTE_TABLES, &format!("{account}/"))? {
                let before = table.associations.len();
                table.associations.retain(|a| a.subnet_id.as_deref() != Some(id));
                if table.associations.len() != before {
                    tx.insert(&ROUTE_TABLES, &table_key, &table)?;
                }
            }
            tx.remove(&SUBNETS, &key(account, id))?;
            tags::drop_tags(tx, account, id)?;
            Ok(())
        })
    }

    /// ModifySubnetAttribute `MapPublicIpOnLaunch`.
    pub fn modify_subnet(&self, account: &str, id: &str, map_public_ip_on_launch: bool) -> Result<()> {
        self.store().write(|tx| {
            let mut subnet = subnet_in(tx, account, id)?;
            subnet.map_public_ip_on_launch = map_public_ip_on_launch;
            tx.insert(&SUBNETS, &key(account, id), &subnet)?;
            Ok(())
        })
    }

    pub fn internet_gateways(&self, account: &str) -> Result<Vec<InternetGatewayRecord>> {
        Ok(self
            .store()
            .read(|tx| tx.scan(&INTERNET_GATEWAYS, &format!("{account}/")))?
            .into_iter()
            .map(|(_, g)| g)
            .collect())
    }

    pub fn create_internet_gateway(&self, account: &str, tags: &[(String, String)]) -> Result<InternetGatewayRecord> {
        tags::validate_tags(tags)?;
        let gateway = InternetGatewayRecord {
            id: ids::resource_id("igw"),
            account: account.to_owned(),
            vpc_id: None,
            created_ms: now_ms(),
            public_ip: None,
        };
        self.store().write(|tx| {
            tx.insert(&INTERNET_GATEWAYS, &key(account, &gateway.id), &gateway)?;
            tags::put_tags(tx, account, &gateway.id, tags)
        })?;
        Ok(gateway)
    }

    /// AttachInternetGateway: one gateway per VPC, one VPC per gateway.
    pub fn attach_internet_gateway(&self, account: &str, gateway_id: &str, vpc_id: &str) -> Result<()> {
        self.network_changed_after(self.store().write(|tx| {
            let mut gateway = gateway_in(tx, account, gateway_id)?;
            vpc_in(tx, account, vpc_id)?;
            if gateway.vpc_id.is_some() {
                return Err(Error::AlreadyAssociated(gateway_id.to_owned()));
            }
            let others = tx.scan(&INTERNET_GATEWAYS, &format!("{account}/"))?;
            if let Some((_, other)) = others.iter().find(|(_, g)| g.vpc_id.as_deref() == Some(vpc_id)) {
                return Err(Error::AlreadyAssociated(format!("{vpc_id} (it has {})", other.id)));
            }
            gateway.vpc_id = Some(vpc_id.to_owned());
            // The VPC reaches the public network through its router's own address.
            let holder = key(account, gateway_id);
            let address = crate::addresses::take_public_address(tx, &self.public_network(), &holder)?;
            gateway.public_ip = Some(address.to_string());
            tx.insert(&INTERNET_GATEWAYS, &key(account, gateway_id), &gateway)?;
            Ok(())
        }))
    }

    /// DetachInternetGateway. Routes through it stay, blackholed, as on AWS.
    pub fn detach_internet_gateway(&self, account: &str, gateway_id: &str, vpc_id: &str) -> Result<()> {
        self.network_changed_after(self.store().write(|tx| {
            let mut gateway = gateway_in(tx, account, gateway_id)?;
            vpc_in(tx, account, vpc_id)?;
            if gateway.vpc_id.as_deref() != Some(vpc_id) {
                return Err(Error::GatewayNotAttached { gateway: gateway_id.to_owned(), vpc: vpc_id.to_owned() });
            }
            if crate::addresses::mapped_into(tx, account, vpc_id)? {
                return Err(Error::DependencyViolation(format!(
                    "Network {vpc_id} has some mapped public address(es). Please unmap those public address(es) before detaching the gateway."
                )));
            }
            gateway.vpc_id = None;
            if let Some(address) = gateway.public_ip.take() {
                crate::addresses::give_back_public_address(tx, &address, &key(account, gateway_id))?;
            }
            tx.insert(&INTERNET_GATEWAYS, &key(account, gateway_id), &gateway)?;
            Ok(())
        }))
    }

    pub fn delete_internet_gateway(&self, account: &str, gateway_id: &str) -> Result<()> {
        self.store().write(|tx| {
            let gateway = gateway_in(tx, account, gateway_id)?;
            if gateway.vpc_id.is_some() {
                return Err(dependency("internetGateway", gateway_id));
            }
            tx.remove(&INTERNET_GATEWAYS, &key(account, gateway_id))?;
            tags::drop_tags(tx, account, gateway_id)?;
            Ok(())
        })
    }

    pub fn route_tables(&self, account: &str) -> Result<Vec<RouteTableRecord>> {
        Ok(self
            .store()
            .read(|tx| tx.scan(&ROUTE_TABLES, &format!("{account}/")))?
            .into_iter()
            .map(|(_, t)| t)
            .collect())
    }

    pub fn create_route_table(
        &self,
        account: &str,
        vpc_id: &str,
        tags: &[(String, String)],
    ) -> Result<RouteTableRecord> {
        tags::validate_tags(tags)?;
        self.store().write(|tx| {
            let vpc = vpc_in(tx, account, vpc_id)?;
            let table = RouteTableRecord {
                id: ids::resource_id("rtb"),
                account: account.to_owned(),
                vpc_id: vpc_id.to_owned(),
                routes: vec![local_route(&vpc.cidr)],
                associations: Vec::new(),
                created_ms: now_ms(),
            };
            tx.insert(&ROUTE_TABLES, &key(account, &table.id), &table)?;
            tags::put_tags(tx, account, &table.id, tags)?;
            Ok(table)
        })
    }

    pub fn delete_route_table(&self, account: &str, id: &str) -> Result<()> {
        self.store().write(|tx| {
            let table = table_in(tx, account, id)?;
            if !table.associations.is_empty() {
                return Err(dependency("routeTable", id));
            }
            tx.remove(&ROUTE_TABLES, &key(account, id))?;
            tags::drop_tags(tx, account, id)?;
            Ok(())
        })
    }

    /// AssociateRouteTable: a subnet of the table's VPC, which has no table of its own yet.
    pub fn associate_route_table(&self, account: &str, table_id: &str, subnet_id: &str) -> Result<String> {
        self.network_changed_after(self.store().write(|tx| {
            let mut table = table_in(tx, account, table_id)?;
            let subnet = subnet_in(tx, account, subnet_id)?;
            if subnet.vpc_id != table.vpc_id {
                return Err(invalid(
                    "SubnetId",
                    format!("Route table {table_id} and subnet {subnet_id} belong to different networks"),
                ));
            }
            let tables = tables_of_vpc(tx, account, &table.vpc_id)?;
            if tables.iter().any(|t| t.associations.iter().any(|a| a.subnet_id.as_deref() == Some(subnet_id))) {
                return Err(Error::AlreadyAssociated(subnet_id.to_owned()));
            }
            let association =
                RouteTableAssociationRecord { id: ids::resource_id("rtbassoc"), subnet_id: Some(subnet_id.to_owned()) };
            table.associations.push(association.clone());
            tx.insert(&ROUTE_TABLES, &key(account, table_id), &table)?;
            Ok(association.id)
        }))
    }

    /// DisassociateRouteTable: the subnet follows the main table again. The main association
    /// itself cannot go.
    pub fn disassociate_route_table(&self, account: &str, association_id: &str) -> Result<()> {
        self.network_changed_after(self.store().write(|tx| {
            let mut table = table_with_association(tx, account, association_id)?;
            if table.associations.iter().any(|a| a.id == association_id && a.subnet_id.is_none()) {
                return Err(invalid(
                    "AssociationId",
                    format!("Cannot disassociate the main route table association {association_id}"),
                ));
            }
            table.associations.retain(|a| a.id != association_id);
            tx.insert(&ROUTE_TABLES, &key(account, &table.id), &table)?;
            Ok(())
        }))
    }

    /// ReplaceRouteTableAssociation: the subnet (or the VPC's main role) moves to `table_id`
    /// under a new association id.
    pub fn replace_route_table_association(
        &self,
        account: &str,
        association_id: &str,
        table_id: &str,
    ) -> Result<String> {
        self.network_changed_after(self.store().write(|tx| {
            let mut from = table_with_association(tx, account, association_id)?;
            let mut to = table_in(tx, account, table_id)?;
            if to.vpc_id != from.vpc_id {
                return Err(invalid(
                    "RouteTableId",
                    format!("Route table {table_id} and association {association_id} belong to different networks"),
                ));
            }
            let subnet_id = from.associations.iter().find(|a| a.id == association_id).and_then(|a| a.subnet_id.clone());
            let new_id = match &subnet_id {
                None => ids::derived_id("rtbassoc", &[account, table_id, "main", &ids::resource_id("x")]),
                Some(_) => ids::resource_id("rtbassoc"),
            };
            from.associations.retain(|a| a.id != association_id);
            if from.id == to.id {
                to = from;
            } else {
                tx.insert(&ROUTE_TABLES, &key(account, &from.id), &from)?;
            }
            to.associations.push(RouteTableAssociationRecord { id: new_id.clone(), subnet_id });
            tx.insert(&ROUTE_TABLES, &key(account, table_id), &to)?;
            Ok(new_id)
        }))
    }

    /// The stored target a request's target names, checked against the table's VPC.
    fn route_target(
        tx: &impl Reads,
        account: &str,
        table: &RouteTableRecord,
        target: &TargetSpec,
    ) -> Result<RouteTarget> {
        match target {
            TargetSpec::Local => Ok(RouteTarget::Local),
            TargetSpec::Gateway(id) => {
                let gateway = gateway_in(tx, account, id)?;
                if gateway.vpc_id.as_deref() != Some(table.vpc_id.as_str()) {
                    return Err(invalid(
                        "GatewayId",
                        format!("route table {} and network gateway {id} belong to different networks", table.id),
                    ));
                }
                Ok(RouteTarget::InternetGateway(id.clone()))
            }
            TargetSpec::NatGateway(id) => {
                let nat = crate::nat_gateways::nat_gateway_in(tx, account, id)?;
                if nat.vpc_id != table.vpc_id {
                    return Err(invalid(
                        "NatGatewayId",
                        format!("route table {} and NAT gateway {id} belong to different networks", table.id),
                    ));
                }
                Ok(RouteTarget::NatGateway(id.clone()))
            }
            TargetSpec::Instance(id) => {
                let instance = tx
                    .get(&INSTANCES, &key(account, id))?
                    .filter(|i| i.state != InstanceState::Terminated)
                    .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::Instance, id: id.clone() })?;
                if instance.vpc_id != table.vpc_id {
                    return Err(invalid(
                        "InstanceId",
                        format!("route table {} and instance {id} belong to different networks", table.id),
                    ));
                }
                Ok(RouteTarget::Instance(id.clone()))
            }
            TargetSpec::NetworkInterface(id) => {
                // A live instance's primary interface (by the interface index), or one of its own.
                let primary = match crate::listing::primary_interface_owner(tx, account, id)? {
                    Some(instance_key) => tx.get(&INSTANCES, &instance_key)?.map(|i| i.vpc_id),
                    None => None,
                };
                let vpc_id = match primary {
                    Some(vpc_id) => vpc_id,
                    None => tx.get(&NETWORK_INTERFACES, &key(account, id))?.map(|i| i.vpc_id).ok_or_else(|| {
                        Error::ResourceNotFound { kind: ResourceKind::NetworkInterface, id: id.clone() }
                    })?,
                };
                if vpc_id != table.vpc_id {
                    return Err(invalid(
                        "NetworkInterfaceId",
                        format!("route table {} and interface {id} belong to different networks", table.id),
                    ));
                }
                Ok(RouteTarget::NetworkInterface(id.clone()))
            }
        }
    }

    /// CreateRoute (`replace`: ReplaceRoute, which needs the route to exist).
    pub fn put_route(
        &self,
        account: &str,
        table_id: &str,
        destination: &str,
        target: &TargetSpec,
        replace: bool,
    ) -> Result<()> {
        let block = cidr_parameter(destination, "DestinationCidrBlock", "destinationCidrBlock")?;
        let destination = block.to_string();
        self.network_changed_after(self.store().write(|tx| {
            let mut table = table_in(tx, account, table_id)?;
            let stored = Self::route_target(tx, account, &table, target)?;
            // Through a guest, only what leaves the VPC: OVN keeps the VPC's own addresses on
            // their subnets (EC2's routes more specific than the local route are not here).
            if matches!(stored, RouteTarget::Instance(_) | RouteTarget::NetworkInterface(_)) {
                let vpc = Cidr::parse(&vpc_in(tx, account, &table.vpc_id)?.cidr);
                if vpc.is_some_and(|vpc| vpc.overlaps(block)) {
                    return Err(Error::UnsupportedOperation(format!(
                        "Routes through an instance or a network interface to the VPC's own addresses \
                         ({destination}) are not supported: only destinations outside the VPC."
                    )));
                }
            }
            let existing = table.routes.iter().position(|r| r.destination == destination);
            match (existing, replace) {
                (Some(_), false) => return Err(Error::RouteAlreadyExists(destination)),
                (None, true) => return Err(Error::RouteNotFound { destination, table: table_id.to_owned() }),
                (Some(at), true) => {
                    // The local route stays local; only a route inside the VPC may go back to it.
                    let local = table.routes[at].target == RouteTarget::Local;
                    let inside = vpc_in(tx, account, &table.vpc_id)
                        .ok()
                        .and_then(|v| Cidr::parse(&v.cidr))
                        .is_some_and(|vpc| vpc.contains(block));
                    if local && stored != RouteTarget::Local {
                        return Err(invalid(
                            "DestinationCidrBlock",
                            format!("The local route {destination} of route table {table_id} can only point to local"),
                        ));
                    }
                    if stored == RouteTarget::Local && !inside {
                        return Err(invalid(
                            "LocalTarget",
                            format!("Only destinations inside the VPC may route to local, not {destination}"),
                        ));
                    }
                    table.routes[at].target = stored;
                }
                (None, false) => {
                    if stored == RouteTarget::Local {
                        return Err(invalid("LocalTarget", "Only the VPC's own CIDR routes to local"));
                    }
                    table.routes.push(RouteRecord { destination, target: stored, origin: "CreateRoute".into() });
                }
            }
            tx.insert(&ROUTE_TABLES, &key(account, table_id), &table)?;
            Ok(())
        }))
    }

    pub fn delete_route(&self, account: &str, table_id: &str, destination: &str) -> Result<()> {
        let block = cidr_parameter(destination, "DestinationCidrBlock", "destinationCidrBlock")?;
        let destination = block.to_string();
        self.network_changed_after(self.store().write(|tx| {
            let mut table = table_in(tx, account, table_id)?;
            let at = table
                .routes
                .iter()
                .position(|r| r.destination == destination)
                .ok_or_else(|| Error::RouteNotFound { destination: destination.clone(), table: table_id.to_owned() })?;
            if table.routes[at].target == RouteTarget::Local {
                return Err(invalid(
                    "DestinationCidrBlock",
                    format!("cannot remove local route {destination} in route table {table_id}"),
                ));
            }
            table.routes.remove(at);
            tx.insert(&ROUTE_TABLES, &key(account, table_id), &table)?;
            Ok(())
        }))
    }
}

/// Where the routes of a table lead, route by route: whether the target is there (`active`;
/// EC2 says `blackhole` otherwise), and, for a route to an instance or a network interface
/// that is there, the instance and the interface it reaches (an instance's route reaches its
/// primary interface).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteStates {
    pub active: Vec<bool>,
    pub through: Vec<Option<(String, String)>>,
}

/// The ids of the subnets of `account`'s VPC `vpc_id`, in id order, read in `tx` from the
/// subnets' VPC index (an ACL's associations): not every subnet of the account.
pub fn vpc_subnet_ids_in(tx: &impl Reads, account: &str, vpc_id: &str) -> Result<Vec<String>> {
    let prefix = storage::derived::vpc_subnets_prefix(account, vpc_id);
    let mut ids = Vec::new();
    tx.walk_keys(&storage::tables::VPC_SUBNETS, &prefix, None, |key, _| {
        ids.push(key[prefix.len()..].to_owned());
        Ok(true)
    })?;
    Ok(ids)
}

/// Where each route of `table` leads now, read in `tx` with point reads of the table's own
/// targets: a page of route tables costs its routes, not the account's instances.
pub fn route_states_in(tx: &impl Reads, table: &RouteTableRecord) -> Result<RouteStates> {
    let account = table.account.as_str();
    let live = |instance: &str| -> Result<Option<storage::InstanceRecord>> {
        Ok(tx.get(&INSTANCES, &key(account, instance))?.filter(|i| i.state != InstanceState::Terminated))
    };
    let mut states = RouteStates { active: Vec::new(), through: Vec::new() };
    for route in &table.routes {
        let (active, through) = match &route.target {
            RouteTarget::Local => (true, None),
            RouteTarget::InternetGateway(id) => {
                let gateway = tx.get(&INTERNET_GATEWAYS, &key(account, id))?;
                (gateway.is_some_and(|g| g.vpc_id.as_deref() == Some(table.vpc_id.as_str())), None)
            }
            RouteTarget::NatGateway(id) => (tx.get(&NAT_GATEWAYS, &key(account, id))?.is_some(), None),
            RouteTarget::Instance(id) => match live(id)? {
                Some(instance) => (true, Some((instance.id, instance.network_interface_id))),
                None => (false, None),
            },
            RouteTarget::NetworkInterface(id) => {
                // One of the account's own interfaces, attached to a live instance; or a live
                // instance's primary interface.
                let own = tx.get(&NETWORK_INTERFACES, &key(account, id))?;
                let instance = match own {
                    Some(own) => match own.attachment {
                        Some(a) => live(&a.instance_id)?.map(|i| i.id),
                        None => None,
                    },
                    None => crate::listing::primary_interface_owner(tx, account, id)?
                        .and_then(|k| k.split_once('/').map(|(_, i)| i.to_owned())),
                };
                (instance.is_some(), instance.map(|i| (i, id.clone())))
            }
        };
        states.active.push(active);
        states.through.push(through);
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_contain_and_overlap() {
        let vpc = Cidr::parse("10.0.0.0/16").unwrap();
        assert_eq!(Cidr::parse("10.0.0.1/16"), None, "host bits set");
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("10.0.0/16"), None);
        assert_eq!(Cidr::parse("0.0.0.0/0").map(|c| c.to_string()).as_deref(), Some("0.0.0.0/0"));
        assert!(vpc.contains(Cidr::parse("10.0.255.0/24").unwrap()));
        assert!(!vpc.contains(Cidr::parse("10.1.0.0/24").unwrap()));
        assert!(!vpc.contains(Cidr::parse("10.0.0.0/8").unwrap()));
        let a = Cidr::parse("10.0.1.0/24").unwrap();
        assert!(a.overlaps(Cidr::parse("10.0.1.128/25").unwrap()));
        assert!(a.overlaps(vpc));
        assert!(!a.overlaps(Cidr::parse("10.0.2.0/24").unwrap()));
    }

    #[test]
    fn what_the_old_bridge_left_moves_to_the_vpcs_own_spaces() {
        use crate::tests_support::{running_instance, test_disk, test_driver_backend};
        let dir = tempfile::tempdir().unwrap();
        let b = test_driver_backend(dir.path());
        let new = crate::images::NewImage { name: "img".into(), disk: test_disk(dir.path()), ..Default::default() };
        let image = b.register_image("a", new).unwrap();
        let instance = running_instance(&b, "a", &image.id);
        let subnet = b.subnets("a", "vpc-1").unwrap().remove(0);
        let interface = crate::interfaces::NewInterface {
            subnet_id: subnet.id.clone(),
            private_ip: None,
            secondary: Vec::new(),
            secondary_count: 1,
            groups: Vec::new(),
            description: String::new(),
            client_token: None,
        };
        let eni = b.create_network_interface("a", interface, &[]).unwrap();
        let scope = crate::network::lease_scope("vpc-1");
        let held = |b: &Backend| b.store().read(|tx| tx.scan(&LEASES, "")).unwrap();
        let before = held(&b);
        assert_eq!(before.len(), 3, "the instance's address and the interface's two: {before:?}");
        // What a Stratus whose default VPCs shared the bridge left: the VPC marked so, its
        // leases without a scope (one of a holder gone since), no public addresses.
        b.store()
            .write(|tx| {
                let mut vpc = vpc_in(tx, "a", "vpc-1")?;
                vpc.on_bridge = Some(true);
                tx.insert(&VPCS, "a/vpc-1", &vpc)?;
                for (k, lease) in &before {
                    tx.remove(&LEASES, k)?;
                    tx.insert(&LEASES, k.strip_prefix(&scope).unwrap(), lease)?;
                }
                let gone = storage::LeaseRecord { instance_key: "a/i-0dead".into(), mac: "m".into() };
                tx.insert(&LEASES, "172.31.0.99", &gone)?;
                for (k, mut subnet) in tx.scan(&SUBNETS, "a/")? {
                    subnet.map_public_ip_on_launch = false;
                    tx.insert(&SUBNETS, &k, &subnet)?;
                }
                for (k, mut gateway) in tx.scan(&INTERNET_GATEWAYS, "a/")? {
                    if let Some(ip) = gateway.public_ip.take() {
                        crate::addresses::give_back_public_address(tx, &ip, &k)?;
                    }
                    tx.insert(&INTERNET_GATEWAYS, &k, &gateway)?;
                }
                Ok::<_, Error>(())
            })
            .unwrap();
        let address: Ipv4Addr = instance.private_ip.parse().unwrap();
        assert_eq!(b.instance_in(&scope, address).unwrap(), None);
        b.ensure_default_networks().unwrap();
        assert_eq!(held(&b), before, "every lease back in the VPC's space, the holderless one gone");
        assert_eq!(b.instance_in(&scope, address).unwrap().map(|i| i.id), Some(instance.id));
        assert!(!b.vpc("a", "vpc-1").unwrap().shares_bridge());
        assert!(b.subnet_records("a").unwrap().iter().all(|s| s.map_public_ip_on_launch));
        let gateway = &b.internet_gateways("a").unwrap()[0];
        assert!(gateway.public_ip.as_deref().is_some_and(|ip| ip.starts_with("198.51.100.")), "{gateway:?}");
        // The interface's addresses are its own again: a new one does not take them.
        let next = b
            .create_network_interface(
                "a",
                crate::interfaces::NewInterface {
                    subnet_id: subnet.id,
                    private_ip: None,
                    secondary: Vec::new(),
                    secondary_count: 0,
                    groups: Vec::new(),
                    description: String::new(),
                    client_token: None,
                },
                &[],
            )
            .unwrap();
        assert!(![eni.private_ip.as_str(), instance.private_ip.as_str()].contains(&next.private_ip.as_str()));
        assert!(!eni.secondary_ips.contains(&next.private_ip));
        // The next start finds nothing to move and leaves the gateway's address as it is.
        b.ensure_default_networks().unwrap();
        assert_eq!(b.internet_gateways("a").unwrap()[0].public_ip, gateway.public_ip);
    }

    #[test]
    fn default_subnets_follow_the_zones() {
        assert_eq!(default_subnet_cidr(0).unwrap().to_string(), "172.31.0.0/20");
        assert_eq!(default_subnet_cidr(2).unwrap().to_string(), "172.31.32.0/20");
        assert_eq!(default_subnet_cidr(16), None);
    }
}
