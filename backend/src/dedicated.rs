//! Dedicated hosts, the private-cloud way: an account reserves whole pool hosts
//! (AllocateHosts) and its instances of `host` tenancy run there and nowhere else, while no
//! other account's instance is ever placed on them.
//!
//! 1. An allocation is a record keyed by the pool host's id: the host must be schedulable,
//!    in the zone asked, run no other account's instance, and be dedicated to no one.
//! 2. Every placement (launch, start, migration, a maintenance drain) asks [`may_place`], a
//!    pure function, of each host: instances of default tenancy stay off dedicated hosts,
//!    instances of `host` tenancy stay on their account's (the one named, or those with
//!    auto-placement on that take their type).
//! 3. ReleaseHosts gives a host back to the pool once no instance of the account runs on it.

use std::collections::HashMap;

use storage::tables::HOST_ALLOCATIONS;
use storage::{HostAllocationRecord, InstanceRecord, Reads};

use crate::{invalid, now_ms, tags, Backend, Error, ResourceKind, Result};

/// What a placement asks of a host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostWant<'a> {
    pub account: &'a str,
    pub instance_type: &'a str,
    /// `Tenancy=host`.
    pub dedicated: bool,
    /// `HostId` (or the host an `Affinity=host` instance sticks to).
    pub host_id: Option<&'a str>,
}

impl<'a> HostWant<'a> {
    /// What an instance asks of its hosts from then on (start, migration).
    pub fn of(record: &'a InstanceRecord) -> Self {
        Self {
            account: &record.account,
            instance_type: &record.instance_type,
            dedicated: record.dedicated.is_some(),
            host_id: record.dedicated.as_ref().and_then(|d| d.affinity_host.as_deref()),
        }
    }
}

/// The family of an instance type (`m5` of `m5.large`).
pub fn family(instance_type: &str) -> &str {
    instance_type.split('.').next().unwrap_or(instance_type)
}

/// Whether an instance that asks `want` may be placed on `host_id`, dedicated as `allocation`
/// says (or to no one).
pub fn may_place(host_id: &str, allocation: Option<&HostAllocationRecord>, want: &HostWant<'_>) -> bool {
    match allocation {
        None => !want.dedicated && want.host_id.is_none(),
        Some(a) if a.account != want.account || !want.dedicated => false,
        Some(a) => {
            let takes_type = match (&a.instance_type, &a.instance_family) {
                (Some(t), _) => t == want.instance_type,
                (None, Some(f)) => f == family(want.instance_type),
                (None, None) => true,
            };
            takes_type && want.host_id.map_or(a.auto_placement, |id| id == host_id)
        }
    }
}

/// Every allocation, by host id.
pub(crate) fn allocations_in(tx: &impl Reads) -> Result<HashMap<String, HostAllocationRecord>> {
    Ok(tx.scan(&HOST_ALLOCATIONS, "")?.into_iter().collect())
}

/// An AllocateHosts request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostRequest {
    pub zone: String,
    pub instance_type: Option<String>,
    pub instance_family: Option<String>,
    pub quantity: u32,
    pub auto_placement: bool,
    pub host_recovery: bool,
    pub client_token: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// A ModifyHosts change of an allocation: what is not given stays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostChange {
    pub auto_placement: Option<bool>,
    pub host_recovery: Option<bool>,
    pub instance_type: Option<String>,
    pub instance_family: Option<String>,
}

fn not_found(id: &str) -> Error {
    Error::ResourceNotFound { kind: ResourceKind::Host, id: id.to_owned() }
}

/// The account's allocation of `host_id` (another account's is one that does not exist).
fn own(tx: &impl Reads, account: &str, host_id: &str) -> Result<HostAllocationRecord> {
    tx.get(&HOST_ALLOCATIONS, host_id)?.filter(|a| a.account == account).ok_or_else(|| not_found(host_id))
}

impl Backend {
    /// AllocateHosts: `quantity` whole hosts of the zone for `account`, all or none.
    pub fn allocate_hosts(&self, account: &str, req: HostRequest) -> Result<Vec<HostAllocationRecord>> {
        tags::validate_tags(&req.tags)?;
        if let Some(t) = &req.instance_type {
            if self.topology().instance_type(t).is_none() {
                return Err(invalid("InstanceType", format!("Invalid value '{t}' for InstanceType.")));
            }
        }
        if !self.topology().regions.iter().any(|r| r.zones.contains(&req.zone)) {
            return Err(invalid("AvailabilityZone", format!("Invalid availability zone: [{}]", req.zone)));
        }
        let hosts = self.host_snapshots();
        self.store().write(|tx| {
            let allocations = allocations_in(tx)?;
            if let Some(token) = &req.client_token {
                let earlier: Vec<HostAllocationRecord> = allocations
                    .values()
                    .filter(|a| a.account == account && a.client_token.as_ref() == Some(token))
                    .cloned()
                    .collect();
                if !earlier.is_empty() {
                    return Ok(earlier);
                }
            }
            // Hosts other accounts' instances use are not free, whoever asks.
            let mut used_by_others: std::collections::HashSet<String> = std::collections::HashSet::new();
            tx.for_each_live_instance(|_, r| {
                if r.account != account {
                    used_by_others.insert(r.host_id);
                    used_by_others.extend(r.migration_target);
                }
            })?;
            let free: Vec<String> = hosts
                .iter()
                .filter(|h| h.schedulable && h.zone == req.zone)
                .filter(|h| !allocations.contains_key(&h.id) && !used_by_others.contains(&h.id))
                .map(|h| h.id.clone())
                .take(req.quantity as usize)
                .collect();
            if free.len() < req.quantity as usize {
                return Err(Error::InsufficientHostCapacity(req.zone.clone()));
            }
            let mut made = Vec::new();
            for host_id in free {
                let allocation = HostAllocationRecord {
                    host_id: host_id.clone(),
                    account: account.to_owned(),
                    zone: req.zone.clone(),
                    instance_type: req.instance_type.clone(),
                    instance_family: req.instance_family.clone(),
                    auto_placement: req.auto_placement,
                    host_recovery: req.host_recovery,
                    allocated_ms: now_ms(),
                    client_token: req.client_token.clone(),
                };
                tx.insert(&HOST_ALLOCATIONS, &host_id, &allocation)?;
                tags::put_tags(tx, account, &host_id, &req.tags)?;
                made.push(allocation);
            }
            Ok(made)
        })
    }

    /// ReleaseHosts, one host at a time: refused while an instance of the account still holds it.
    pub fn release_host(&self, account: &str, host_id: &str) -> Result<()> {
        self.store().write(|tx| {
            own(tx, account, host_id)?;
            // The host's index, not the account's instances: this holds the store's writer.
            if let Some(instance) = tx.live_instance_on_host(host_id, account)? {
                return Err(Error::IncorrectState(format!(
                    "Host {host_id} still has instance {} on it: terminate or move it first.",
                    instance.id
                )));
            }
            tx.remove(&HOST_ALLOCATIONS, host_id)?;
            tags::drop_tags(tx, account, host_id)?;
            Ok(())
        })
    }

    /// ModifyHosts on an allocation: auto-placement and host recovery at any time, the type or
    /// family it takes while no instance of the account is on it.
    pub fn modify_host_allocation(&self, account: &str, host_id: &str, change: &HostChange) -> Result<()> {
        if let Some(t) = &change.instance_type {
            if self.topology().instance_type(t).is_none() {
                return Err(invalid("InstanceType", format!("Invalid value '{t}' for InstanceType.")));
            }
        }
        self.store().write(|tx| {
            let mut allocation = own(tx, account, host_id)?;
            if change.instance_type.is_some() || change.instance_family.is_some() {
                if tx.live_instance_on_host(host_id, account)?.is_some() {
                    return Err(Error::IncorrectState(format!(
                        "Host {host_id} has instances on it: its instance type or family cannot change."
                    )));
                }
                allocation.instance_type = change.instance_type.clone();
                allocation.instance_family = change.instance_family.clone();
            }
            if let Some(on) = change.auto_placement {
                allocation.auto_placement = on;
            }
            if let Some(on) = change.host_recovery {
                allocation.host_recovery = on;
            }
            tx.insert(&HOST_ALLOCATIONS, host_id, &allocation)?;
            Ok(())
        })
    }

    /// Every allocation, by host id (for DescribeHosts).
    pub fn host_allocations(&self) -> Result<HashMap<String, HostAllocationRecord>> {
        self.store().read(allocations_in)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocation(
        account: &str,
        instance_type: Option<&str>,
        family: Option<&str>,
        auto: bool,
    ) -> HostAllocationRecord {
        HostAllocationRecord {
            host_id: "h-1".into(),
            account: account.into(),
            zone: "z".into(),
            instance_type: instance_type.map(str::to_owned),
            instance_family: family.map(str::to_owned),
            auto_placement: auto,
            host_recovery: false,
            allocated_ms: 0,
            client_token: None,
        }
    }

    fn want<'a>(account: &'a str, instance_type: &'a str, dedicated: bool, host_id: Option<&'a str>) -> HostWant<'a> {
        HostWant { account, instance_type, dedicated, host_id }
    }

    #[test]
    fn shared_hosts_take_default_tenancy_only() {
        assert!(may_place("h-1", None, &want("a", "m5.large", false, None)));
        assert!(!may_place("h-1", None, &want("a", "m5.large", true, None)), "host tenancy needs a dedicated host");
        assert!(!may_place("h-1", None, &want("a", "m5.large", true, Some("h-1"))));
    }

    #[test]
    fn dedicated_hosts_take_their_account_s_host_tenancy_only() {
        let mine = allocation("a", None, Some("m5"), true);
        assert!(may_place("h-1", Some(&mine), &want("a", "m5.large", true, None)));
        assert!(may_place("h-1", Some(&mine), &want("a", "m5.xlarge", true, Some("h-1"))));
        assert!(!may_place("h-1", Some(&mine), &want("a", "m5.large", true, Some("h-2"))), "another host named");
        assert!(!may_place("h-1", Some(&mine), &want("a", "t3.micro", true, None)), "another family");
        assert!(!may_place("h-1", Some(&mine), &want("a", "m5.large", false, None)), "default tenancy stays off");
        assert!(!may_place("h-1", Some(&mine), &want("b", "m5.large", true, None)), "never another account");
        assert!(!may_place("h-1", Some(&mine), &want("b", "m5.large", true, Some("h-1"))));
        let manual = allocation("a", Some("m5.large"), None, false);
        assert!(!may_place("h-1", Some(&manual), &want("a", "m5.large", true, None)), "auto-placement off");
        assert!(may_place("h-1", Some(&manual), &want("a", "m5.large", true, Some("h-1"))));
        assert!(!may_place("h-1", Some(&manual), &want("a", "m5.xlarge", true, Some("h-1"))), "its one type");
    }
}
