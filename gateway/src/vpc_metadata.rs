//! The instance metadata service inside every VPC (issue 16).
//!
//! 1. A guest sends `169.254.169.254` to its router, which routes it to the
//!    VPC's metadata port ([`backend::vpc_network::MetadataPort`]), bound on this machine's
//!    chassis: guests on other hosts reach it through the Geneve tunnels. (Neutron puts a
//!    `localport` with an agent on every host instead; Stratus drives its hosts through libvirt
//!    alone and has no agent there, while this machine is in the overlay anyway as the gateway
//!    chassis, so one end per VPC here serves every host, a tunnel hop away.)
//! 2. That end is a network namespace of this machine, `stratus-meta-<vpc>`, plugged into the
//!    integration bridge as the port (a veth whose OVS interface carries the port's name as
//!    `iface-id`), holding the port's address and `169.254.169.254`.
//! 3. Stratus listens on `169.254.169.254:80` inside each namespace (the socket is bound from a
//!    thread that entered it; sockets keep the namespace they were made in), so whoever
//!    connects is known by (VPC, source address): addresses overlap between VPCs, never within
//!    one, and OVN's port security keeps a guest from using another's. The answers are the
//!    metadata service's ([`crate::metadata`]), looked up in the VPC's address space.
//! 4. [`MetadataPlane::run`] keeps one namespace and one listener per VPC that has a subnet:
//!    made when it gets one, moved when its first subnet changes, removed with it. A restart
//!    finds the namespaces there and binds again.
//! 5. With several replicas ([`backend::leadership`]) the one with the conductor's turn serves:
//!    the others hold no listener, and take over the namespaces when their turn comes.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use backend::vpc_network::{MetadataPort, METADATA_ADDRESS};
use backend::Backend;
use tokio::task::JoinHandle;

use crate::metadata::MetadataService;

/// How often the namespaces are compared with the VPCs.
const RECONCILE_EVERY: Duration = Duration::from_secs(1);

/// A VPC's namespace and the listener that serves it.
struct Served {
    port: MetadataPort,
    task: JoinHandle<()>,
}

pub struct MetadataPlane {
    backend: Arc<Backend>,
    service: Arc<MetadataService>,
    served: tokio::sync::Mutex<HashMap<String, Served>>,
}

use backend::vpc_network::{metadata_link as link, metadata_namespace as namespace};

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// Makes (or mends) a VPC's namespace and its plug into the integration bridge, marked as
/// `installation`'s. Blocks.
fn set_up(port: &MetadataPort, installation: &str) -> Result<(), String> {
    let (ns, link) = (namespace(&port.vpc_id), link(&port.vpc_id));
    if !std::path::Path::new("/run/netns").join(&ns).exists() {
        run("ip", &["netns", "add", &ns])?;
    }
    if run("ip", &["link", "show", &link]).is_err() {
        run("ip", &["link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
    }
    // Open vSwitch's userspace datapath needs checksums filled in (see networking.md).
    run("ethtool", &["-K", &link, "tx", "off"])?;
    run("ip", &["netns", "exec", &ns, "ethtool", "-K", "eth0", "tx", "off"])?;
    // The userspace datapath reads the port beside the kernel, which would answer the
    // namespace's ARP for its router when this machine holds the same address (a VPC's range
    // may overlap this machine's networks): only OVN may answer.
    std::fs::write(format!("/proc/sys/net/ipv4/conf/{link}/arp_ignore"), "1")
        .map_err(|e| format!("arp_ignore on {link}: {e}"))?;
    run("ip", &["link", "set", &link, "up"])?;
    let address = format!("{}/{}", port.address, port.prefix);
    let metadata = format!("{METADATA_ADDRESS}/32");
    let router = port.router.to_string();
    for args in [
        vec!["link", "set", "lo", "up"],
        vec!["link", "set", "eth0", "address", &port.mac],
        vec!["addr", "flush", "dev", "eth0"],
        vec!["addr", "add", &address, "dev", "eth0"],
        vec!["addr", "add", &metadata, "dev", "eth0"],
        vec!["link", "set", "eth0", "up"],
        // Guests of the VPC's other subnets are answered through its router.
        vec!["route", "replace", "default", "via", &router],
    ] {
        let mut full = vec!["-n", ns.as_str()];
        full.extend(args);
        run("ip", &full)?;
    }
    run(
        "ovs-vsctl",
        &[
            "--timeout=10",
            "--may-exist",
            "add-port",
            backend::vpc_network::INTEGRATION_BRIDGE,
            &link,
            "--",
            "set",
            "Interface",
            &link,
            &format!("external_ids:iface-id={}", port.name),
            &format!("external_ids:stratus-installation={installation}"),
            &format!("external_ids:stratus-vpc={}", port.vpc_id),
        ],
    )
}

/// Removes a VPC's namespace and plug. Blocks.
fn tear_down(vpc_id: &str) {
    if let Err(error) = backend::vpc_network::remove_metadata_end(vpc_id) {
        tracing::warn!(vpc = %vpc_id, %error, "removing the VPC's metadata namespace");
    }
}

/// Removes this installation's metadata ends whose VPC is gone (deleted while Stratus was
/// down: the plane only tears down what it serves). Blocks.
fn remove_ends_of_gone_vpcs(backend: &Backend) -> Result<(), String> {
    let installation = backend.installation().map_err(|e| e.to_string())?;
    let wanted = backend.metadata_ports().map_err(|e| e.to_string())?;
    for vpc in backend::vpc_network::marked_metadata_ends(installation)? {
        if !wanted.iter().any(|p| p.vpc_id == vpc) {
            tracing::info!(%vpc, "removing the metadata namespace of a VPC that is gone");
            tear_down(&vpc);
        }
    }
    Ok(())
}

/// A socket on `169.254.169.254:80` inside namespace `ns`, bound from a thread that entered it.
fn bind_in(ns: &str) -> std::io::Result<std::net::TcpListener> {
    let path = std::path::Path::new("/run/netns").join(ns);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = std::fs::File::open(&path)?;
                rustix::thread::move_into_link_name_space(
                    file.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                let listener = std::net::TcpListener::bind((METADATA_ADDRESS, 80))?;
                listener.set_nonblocking(true)?;
                Ok(listener)
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the binding thread panicked")))
    })
}

impl MetadataPlane {
    pub fn new(backend: Arc<Backend>, service: Arc<MetadataService>) -> Self {
        Self { backend, service, served: Default::default() }
    }

    /// Keeps the namespaces in step with the VPCs until the process ends.
    pub async fn run(self: Arc<Self>) {
        let backend = Arc::clone(&self.backend);
        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || remove_ends_of_gone_vpcs(&backend)).await {
            tracing::warn!(%error, "looking for the metadata namespaces of VPCs deleted while Stratus was down");
        }
        loop {
            self.reconcile().await;
            tokio::time::sleep(RECONCILE_EVERY).await;
        }
    }

    async fn reconcile(&self) {
        if !self.backend.leads() {
            // Another replica has the conductor's turn and serves the VPCs' metadata: let go
            // of the listeners (the namespaces stay, for whoever serves next on this machine).
            for (_, served) in self.served.lock().await.drain() {
                served.task.abort();
            }
            return;
        }
        let backend = Arc::clone(&self.backend);
        let wanted = match tokio::task::spawn_blocking(move || backend.metadata_ports()).await {
            Ok(Ok(ports)) => ports,
            Ok(Err(error)) => return tracing::warn!(%error, "reading the VPCs' metadata ports"),
            Err(_) => return,
        };
        let mut served = self.served.lock().await;
        let gone: Vec<String> =
            served.keys().filter(|vpc| !wanted.iter().any(|p| &p.vpc_id == *vpc)).cloned().collect();
        for vpc in gone {
            if let Some(old) = served.remove(&vpc) {
                old.task.abort();
            }
            let _ = tokio::task::spawn_blocking(move || tear_down(&vpc)).await;
        }
        for port in wanted {
            let current = served.get(&port.vpc_id);
            if current.is_some_and(|s| s.port == port && !s.task.is_finished()) {
                continue;
            }
            if let Some(old) = served.remove(&port.vpc_id) {
                old.task.abort();
            }
            let made = port.clone();
            let backend = Arc::clone(&self.backend);
            let ready = tokio::task::spawn_blocking(move || {
                let installation = backend.installation().map_err(std::io::Error::other)?.to_owned();
                set_up(&made, &installation).map_err(std::io::Error::other)?;
                bind_in(&namespace(&made.vpc_id))
            })
            .await;
            let listener = match ready {
                Ok(Ok(listener)) => tokio::net::TcpListener::from_std(listener),
                Ok(Err(error)) => Err(error),
                Err(error) => Err(std::io::Error::other(error)),
            };
            match listener {
                Ok(listener) => {
                    let scope = format!("{}/", port.vpc_id);
                    let task = tokio::spawn(crate::metadata::serve_in(listener, Arc::clone(&self.service), scope));
                    tracing::info!(vpc = %port.vpc_id, address = %port.address, "metadata service in the VPC");
                    served.insert(port.vpc_id.clone(), Served { port, task });
                }
                Err(error) => {
                    tracing::warn!(vpc = %port.vpc_id, %error, "metadata service in the VPC not ready; retried")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel() {
        let vpc = "vpc-0123456789abcdef0";
        assert_eq!(link(vpc).len(), 15, "interface names are at most 15 bytes");
        assert_ne!(link(vpc), link("vpc-0123456789abcdef1"));
        assert_eq!(namespace(vpc), "stratus-meta-vpc-0123456789abcdef0");
    }
}
