//! NAT gateways (issue 16): a subnet's way out for private subnets, with no way in.
//!
//! A NAT gateway lives in a subnet of a VPC that has an internet gateway; it takes an address of
//! that subnet (leased like an instance's, so no instance gets it) and an Elastic IP of the
//! account, associated with its own network interface. Route tables send destinations to it
//! ([`crate::vpcs`]); OVN translates what those subnets send to its Elastic IP (SNAT), and
//! nothing from outside reaches them through it ([`crate::vpc_network`]). As on AWS, it works
//! when its own subnet is routed to the internet gateway.

use storage::tables::{ADDRESSES, INTERNET_GATEWAYS, LEASES, NAT_GATEWAYS};
use storage::{AddressAssociationRecord, NatGatewayRecord, Reads};

use crate::network::{self, Subnet};
use crate::{ids, invalid, now_ms, tags, Backend, Error, ResourceKind, Result};

fn key(account: &str, id: &str) -> String {
    format!("{account}/{id}")
}

pub(crate) fn nat_gateway_in(tx: &impl Reads, account: &str, id: &str) -> Result<NatGatewayRecord> {
    tx.get(&NAT_GATEWAYS, &key(account, id))?
        .ok_or_else(|| Error::ResourceNotFound { kind: ResourceKind::NatGateway, id: id.to_owned() })
}

/// Whether a NAT gateway sits in `subnet_id` (which may then not go).
pub(crate) fn in_subnet(tx: &impl Reads, account: &str, subnet_id: &str) -> Result<bool> {
    Ok(tx.scan(&NAT_GATEWAYS, &format!("{account}/"))?.iter().any(|(_, n)| n.subnet_id == subnet_id))
}

impl Backend {
    pub fn nat_gateways(&self, account: &str) -> Result<Vec<NatGatewayRecord>> {
        Ok(self
            .store()
            .read(|tx| tx.scan(&NAT_GATEWAYS, &format!("{account}/")))?
            .into_iter()
            .map(|(_, n)| n)
            .collect())
    }

    /// CreateNatGateway (public): in `subnet_id`, with the Elastic IP `allocation_id`. A client
    /// token makes a retry answer the gateway the first request made.
    pub fn create_nat_gateway(
        &self,
        account: &str,
        subnet_id: &str,
        allocation_id: &str,
        client_token: Option<&str>,
        tags: &[(String, String)],
    ) -> Result<NatGatewayRecord> {
        tags::validate_tags(tags)?;
        let subnet: Subnet = self.subnet(account, subnet_id)?;
        self.store().write(|tx| {
            if let Some(token) = client_token {
                let earlier = tx.scan(&NAT_GATEWAYS, &format!("{account}/"))?;
                if let Some((_, nat)) = earlier.into_iter().find(|(_, n)| n.client_token.as_deref() == Some(token)) {
                    if nat.subnet_id != subnet_id || nat.allocation_id != allocation_id {
                        return Err(Error::IdempotentParameterMismatch(token.to_owned()));
                    }
                    return Ok(nat);
                }
            }
            crate::vpcs::subnet_in(tx, account, subnet_id)?;
            let mut address = crate::addresses::address_in(tx, account, allocation_id)?;
            if let Some(association) = &address.association {
                return Err(Error::AlreadyAssociated(format!("{allocation_id} (associated with {})", association.id)));
            }
            let gateways = tx.scan(&INTERNET_GATEWAYS, &format!("{account}/"))?;
            if !gateways.iter().any(|(_, g)| g.vpc_id.as_deref() == Some(subnet.vpc_id.as_str())) {
                return Err(Error::VpcWithoutGateway(subnet.vpc_id.clone()));
            }
            let id = ids::resource_id("nat");
            let interface = ids::resource_id("eni");
            let private_ip = network::lease_address(tx, &subnet, &key(account, &id), &network::new_mac())?;
            let nat = NatGatewayRecord {
                id: id.clone(),
                account: account.to_owned(),
                vpc_id: subnet.vpc_id.clone(),
                subnet_id: subnet_id.to_owned(),
                allocation_id: allocation_id.to_owned(),
                public_ip: address.public_ip.clone(),
                network_interface_id: interface.clone(),
                private_ip: private_ip.to_string(),
                client_token: client_token.map(str::to_owned),
                created_ms: now_ms(),
            };
            address.association = Some(AddressAssociationRecord {
                id: ids::resource_id("eipassoc"),
                instance_id: None,
                network_interface_id: interface,
                private_ip: nat.private_ip.clone(),
                vpc_id: nat.vpc_id.clone(),
                subnet_id: nat.subnet_id.clone(),
            });
            tx.insert(&ADDRESSES, &key(account, allocation_id), &address)?;
            tx.insert(&NAT_GATEWAYS, &key(account, &id), &nat)?;
            tags::put_tags(tx, account, &id, tags)?;
            Ok(nat)
        })
    }

    /// DeleteNatGateway: its Elastic IP is disassociated (kept by the account), its address goes
    /// back to the subnet, routes through it turn `blackhole`.
    pub fn delete_nat_gateway(&self, account: &str, id: &str) -> Result<NatGatewayRecord> {
        self.store().write(|tx| {
            let nat = nat_gateway_in(tx, account, id)?;
            if let Some(mut address) = tx.get(&ADDRESSES, &key(account, &nat.allocation_id))? {
                if address.association.as_ref().is_some_and(|a| a.network_interface_id == nat.network_interface_id) {
                    address.association = None;
                    tx.insert(&ADDRESSES, &key(account, &nat.allocation_id), &address)?;
                }
            }
            let lease = format!("{}{}", network::lease_scope(&nat.vpc_id), nat.private_ip);
            if tx.get(&LEASES, &lease)?.is_some_and(|l| l.instance_key == key(account, id)) {
                tx.remove(&LEASES, &lease)?;
            }
            tx.remove(&NAT_GATEWAYS, &key(account, id))?;
            tags::drop_tags(tx, account, id)?;
            Ok(nat)
        })
    }
}

/// The checks CreateNatGateway makes of its request before the backend sees it.
pub fn validate_connectivity(connectivity: Option<&str>) -> Result<()> {
    match connectivity {
        None | Some("public") => Ok(()),
        Some("private") => Err(Error::UnsupportedOperation("Private NAT gateways are not supported yet.".into())),
        Some(other) => Err(invalid(
            "ConnectivityType",
            format!("Value ({other}) for parameter connectivityType is invalid. Expected one of: public, private."),
        )),
    }
}
