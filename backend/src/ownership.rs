//! Whose objects are on a host, and cleaning up those that nobody will come back for.
//!
//! Every data dir is one *installation*, with an id made at its first start (16 hex digits,
//! kept in its store and mirrored in `<data dir>/installation` for other processes to read).
//! Everything Stratus leaves outside its data dir carries that id, and where it can, the data
//! dir's path:
//! - a domain: `<metadata><stratus:owner xmlns:stratus='…' installation='…' data-dir='…'
//!   address='…'/></metadata>` ([`owner_metadata`]);
//! - its rows in OVN's northbound database: `external_ids:stratus-installation` on every row,
//!   `stratus-data-dir` on its routers ([`crate::vpc_network`]);
//! - its VPCs' metadata namespaces on this machine: their plugs into the integration bridge
//!   carry the installation and the VPC.
//!
//! Instance disks, console logs and images live in the data dir: removing the data dir
//! removes them, so they need no mark.
//!
//! The inventory ([`Backend::inventory`]) lists what the hosts hold that is not this
//! installation's: objects marked by another installation, and objects without a mark (from a
//! Stratus older than the marks) that this installation's store does not know. Only names
//! Stratus gives are looked at (`i-…` domains, rows marked as Stratus's): an operator's own
//! domains are never listed, let alone touched. Another installation is *live*
//! while its data dir still holds its id, and *gone* once the data dir was removed or reused;
//! the objects of gone installations and unmarked ones are **orphans**.
//!
//! What the leftovers hold stays out of this installation's way: every installation's VPCs are
//! networks of their own in OVN, so their private addresses never meet; the public addresses
//! other installations' networks hold are never handed out here
//! ([`Backend::reserve_public_addresses_of_others`]). The inventory is taken at start and again
//! whenever the sweep sees the hosts' unknown domains change.
//!
//! Cleaning ([`Backend::clean`]) is always asked for by an operator (`stratus host clean`), for
//! the orphans or for one named installation, and never touches this installation's objects:
//! a domain is powered off and undefined; another installation's OVN rows and its VPCs'
//! metadata namespaces go with `--installation` (or once its data dir is gone). Files in another
//! installation's data dir are left alone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;

use quick_xml::events::Event;
use serde::{Deserialize, Serialize};

use crate::hypervisor::PowerState;
use crate::{Backend, Error, ResourceKind, Result};

/// The XML namespace of Stratus's domain metadata.
pub const OWNER_NS: &str = "https://stratus.dev/xmlns/owner/1";

/// The file in a data dir that tells other processes which installation it holds.
pub const INSTALLATION_FILE: &str = "installation";

/// The mark an object carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub installation: String,
    /// Where the installation keeps its data (absent on rows older than that part of the mark).
    pub data_dir: Option<String>,
}

/// What Stratus learns from a domain's definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainFacts {
    pub mark: Option<Mark>,
    /// The guest's address: from the mark, else from the kernel's `ip=` argument.
    pub address: Option<Ipv4Addr>,
}

/// A new installation id: 16 lowercase hex digits.
pub fn new_installation_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn is_installation_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The `<metadata>` element of a domain made by `installation`.
pub fn owner_metadata(installation: &str, data_dir: &Path, address: &str) -> String {
    use quick_xml::escape::escape;
    format!(
        "<metadata><stratus:owner xmlns:stratus='{OWNER_NS}' installation='{}' data-dir='{}' address='{}'/></metadata>",
        escape(installation),
        escape(data_dir.to_string_lossy()),
        escape(address)
    )
}

/// Reads the mark and the address out of a domain's XML (libvirt's rendering of what
/// [`owner_metadata`] put there). Anything unreadable is simply not a mark.
pub fn domain_facts(xml: &str) -> DomainFacts {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut facts = DomainFacts::default();
    let mut in_cmdline = false;
    let mut cmdline_address = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) if e.local_name().as_ref() == b"owner" => {
                let mut attributes = HashMap::new();
                for attribute in e.attributes().flatten() {
                    let Ok(value) = attribute.unescape_value() else { continue };
                    attributes.insert(String::from_utf8_lossy(attribute.key.as_ref()).into_owned(), value.into_owned());
                }
                let ours = attributes.iter().any(|(k, v)| k.starts_with("xmlns") && v == OWNER_NS);
                match attributes.get("installation") {
                    Some(installation) if ours && is_installation_id(installation) => {
                        facts.mark = Some(Mark {
                            installation: installation.clone(),
                            data_dir: attributes.get("data-dir").cloned(),
                        });
                        facts.address = attributes.get("address").and_then(|a| a.parse().ok());
                    }
                    _ => {}
                }
            }
            Ok(Event::Start(e)) => in_cmdline = e.local_name().as_ref() == b"cmdline",
            Ok(Event::Text(text)) if in_cmdline => {
                // Entities split the text into several events: the `ip=` argument is in one.
                let text = text.decode().unwrap_or_default();
                let found = text
                    .split_whitespace()
                    .find_map(|arg| arg.strip_prefix("ip="))
                    .and_then(|value| value.split(':').next())
                    .and_then(|a| a.parse().ok());
                cmdline_address = cmdline_address.or(found);
            }
            Ok(Event::End(_)) => in_cmdline = false,
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if facts.address.is_none() {
        facts.address = cmdline_address;
    }
    facts
}

/// What kind of object a leftover is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Domain,
    /// An installation's rows in OVN's northbound database (routers, switches, port groups…).
    OvnNetwork,
    /// A VPC's metadata namespace on this machine, with its plug into the integration bridge.
    MetadataNamespace,
}

impl ObjectKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Domain => "domain",
            Self::OvnNetwork => "OVN rows",
            Self::MetadataNamespace => "metadata namespace",
        }
    }
}

/// Whose a leftover is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// Another installation, whose data dir still holds its id.
    Live { installation: String, data_dir: String },
    /// Another installation whose data dir is gone (or holds another installation now).
    Gone { installation: String },
    /// No mark and unknown to this installation's store.
    Unmarked,
}

impl Owner {
    pub fn is_orphan(&self) -> bool {
        !matches!(self, Self::Live { .. })
    }

    pub fn installation(&self) -> Option<&str> {
        match self {
            Self::Live { installation, .. } | Self::Gone { installation } => Some(installation),
            Self::Unmarked => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Live { installation, data_dir } => format!("installation {installation} (live, data dir {data_dir})"),
            Self::Gone { installation } => format!("installation {installation} (its data dir is gone)"),
            Self::Unmarked => "no installation (unmarked)".into(),
        }
    }
}

/// One object on a host that is not this installation's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Leftover {
    /// The host id; `ovn` for OVN's rows, `local` for this machine's namespaces.
    pub host: String,
    pub kind: ObjectKind,
    pub name: String,
    pub owner: Owner,
    /// A domain that runs a guest.
    pub running: bool,
    pub address: Option<Ipv4Addr>,
}

impl Leftover {
    pub fn line(&self) -> String {
        let mut line =
            format!("{:<10} {:<28} on {:<18} {}", self.kind.label(), self.name, self.host, self.owner.describe());
        if self.running {
            line.push_str(", running");
        }
        if let Some(address) = self.address {
            line.push_str(&format!(", holds {address}"));
        }
        line
    }
}

/// What the hosts hold that is not this installation's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub installation: String,
    pub leftovers: Vec<Leftover>,
    /// Hosts that did not answer, with why: what they hold is unknown.
    pub unreachable: Vec<(String, String)>,
    /// Other installations' logical networks in OVN, with the public addresses their gateway
    /// ports and NAT rules hold (never handed out here: both would answer for them on the
    /// public network).
    #[serde(default)]
    pub ovn_networks: BTreeMap<String, BTreeSet<Ipv4Addr>>,
}

impl Inventory {
    pub fn orphans(&self) -> impl Iterator<Item = &Leftover> {
        self.leftovers.iter().filter(|l| l.owner.is_orphan())
    }

    /// The log block said at start: what is in the way and how to remove it; `None` when
    /// nothing is.
    pub fn report(&self) -> Option<String> {
        let networks = self.ovn_networks_report();
        if self.leftovers.is_empty() {
            return networks;
        }
        let mut text = format!(
            "the hosts hold {} object(s) that are not this installation's ({}):",
            self.leftovers.len(),
            self.installation
        );
        for leftover in &self.leftovers {
            text.push_str("\n  ");
            text.push_str(&leftover.line());
        }
        text.push('\n');
        text.push_str(&self.hint());
        if let Some(networks) = networks {
            text.push('\n');
            text.push_str(&networks);
        }
        Some(text)
    }

    /// Other installations' logical networks in OVN, and what to do about them.
    fn ovn_networks_report(&self) -> Option<String> {
        if self.ovn_networks.is_empty() {
            return None;
        }
        let mut text = String::from(
            "OVN holds the logical networks of other installations; their public addresses are not handed out:",
        );
        for (installation, addresses) in &self.ovn_networks {
            let listed: Vec<String> = addresses.iter().map(Ipv4Addr::to_string).collect();
            text.push_str(&format!(
                "\n  installation {installation}: public addresses {}; once it is gone for good, remove its \
                 network with `stratus host clean --installation {installation}`",
                if listed.is_empty() { "none".to_owned() } else { listed.join(", ") }
            ));
        }
        Some(text)
    }

    /// What to run about the leftovers.
    pub fn hint(&self) -> String {
        let orphans = self.orphans().count();
        let live: BTreeSet<&str> =
            self.leftovers.iter().filter(|l| !l.owner.is_orphan()).filter_map(|l| l.owner.installation()).collect();
        let mut hint = String::new();
        if orphans > 0 {
            hint.push_str(&format!(
                "  {orphans} are orphans: see them with `stratus host clean --orphans --dry-run`, remove them with `stratus host clean --orphans`"
            ));
        }
        for installation in live {
            if !hint.is_empty() {
                hint.push('\n');
            }
            hint.push_str(&format!(
                "  installation {installation} still has its data dir: stop it there, or remove its objects with `stratus host clean --installation {installation}`"
            ));
        }
        hint
    }
}

/// Which leftovers to clean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Unmarked objects and those of installations whose data dir is gone.
    Orphans,
    /// Everything of one other installation, live or not (its guests are destroyed).
    Installation(String),
}

impl Selection {
    pub fn picks(&self, leftover: &Leftover) -> bool {
        match self {
            Self::Orphans => leftover.owner.is_orphan(),
            Self::Installation(id) => leftover.owner.installation() == Some(id.as_str()),
        }
    }
}

/// One cleaning step, done or (in a dry run) to be done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanStep {
    pub leftover: Leftover,
    /// `None` when done (or in a dry run); else what went wrong.
    pub error: Option<String>,
}

/// Whether the data dir at `data_dir` still holds `installation`.
pub fn installation_is_live(installation: &str, data_dir: &str) -> bool {
    std::fs::read_to_string(Path::new(data_dir).join(INSTALLATION_FILE)).is_ok_and(|id| id.trim() == installation)
}

/// Decides whose each found object is, from its mark; objects marked as this installation's
/// are dropped (the caller has left out the names this installation's store knows). An
/// installation's data dir is learnt from any of its objects that names it.
pub(crate) fn classify(
    ours: &str,
    found: Vec<(Leftover, Option<Mark>)>,
    is_live: impl Fn(&str, &str) -> bool,
) -> Vec<Leftover> {
    let mut data_dirs: BTreeMap<String, String> = BTreeMap::new();
    for (_, mark) in &found {
        if let Some(Mark { installation, data_dir: Some(dir) }) = mark {
            data_dirs.entry(installation.clone()).or_insert_with(|| dir.clone());
        }
    }
    let mut leftovers: Vec<Leftover> = found
        .into_iter()
        .filter_map(|(mut leftover, mark)| {
            leftover.owner = match mark {
                Some(mark) if mark.installation == ours => return None,
                Some(Mark { installation, .. }) => match data_dirs.get(&installation) {
                    Some(dir) if is_live(&installation, dir) => Owner::Live { installation, data_dir: dir.clone() },
                    _ => Owner::Gone { installation },
                },
                None => Owner::Unmarked,
            };
            Some(leftover)
        })
        .collect();
    leftovers.sort();
    leftovers
}

fn is_instance_name(name: &str) -> bool {
    ResourceKind::of_id(name) == Some(ResourceKind::Instance)
}

/// The host id this machine's own objects (metadata namespaces) are listed under.
pub const LOCAL: &str = "local";

impl Backend {
    /// This installation's id: made at the first call and kept in the store.
    pub fn installation(&self) -> Result<&str> {
        self.kept_value(&self.installation, "installation", new_installation_id)
    }

    /// Writes `<data dir>/installation` (whole, then renamed into place), so that other
    /// installations can tell that this one is live. Called at every start.
    pub fn publish_installation(&self) -> Result<()> {
        let id = self.installation()?;
        let path = self.data_dir().join(INSTALLATION_FILE);
        if std::fs::read_to_string(&path).is_ok_and(|existing| existing.trim() == id) {
            return Ok(());
        }
        let partial = self.data_dir().join(".installation.partial");
        std::fs::write(&partial, format!("{id}\n"))
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|e| Error::Io(format!("writing {}: {e}", path.display())))
    }

    /// The `<metadata>` this installation puts on an instance's domain.
    pub(crate) fn domain_mark(&self, record: &storage::InstanceRecord) -> Result<String> {
        Ok(owner_metadata(self.installation()?, self.data_dir(), &record.private_ip))
    }

    /// Other installations' logical networks in OVN; `None` without OVN, or when it does not
    /// answer (said in the log): then the reservations stay as they are.
    fn other_networks_in_ovn(&self) -> Option<BTreeMap<String, OtherNetwork>> {
        let sync = self.ovn.as_ref()?;
        let ours = self.installation().ok()?;
        other_installations_in_ovn(&sync.northbound, ours, &self.public_network())
            .map_err(|error| tracing::warn!(%error, "could not read other installations' networks in OVN"))
            .ok()
    }

    /// Reads other installations' logical networks in OVN and reserves the public addresses
    /// they hold ([`Self::reserve_public_addresses`]). Called at start, before the first
    /// default VPC takes an address; each inventory does the same with what it read.
    pub fn reserve_public_addresses_of_others(&self) -> Result<BTreeMap<String, BTreeSet<Ipv4Addr>>> {
        match self.other_networks_in_ovn() {
            Some(others) => self.reserve_public_addresses(&others),
            None => Ok(BTreeMap::new()),
        }
    }

    /// Reserves in this pool (`PUBLIC_ADDRESSES`, under [`OTHER_INSTALLATION`]) the public
    /// addresses `others` hold, so that none is handed out here while two routers would answer
    /// for it; reservations they gave up go. Writes only when something changes. Answers the
    /// networks that hold addresses of this pool (others share nothing with it).
    fn reserve_public_addresses(
        &self,
        others: &BTreeMap<String, OtherNetwork>,
    ) -> Result<BTreeMap<String, BTreeSet<Ipv4Addr>>> {
        let networks: BTreeMap<String, BTreeSet<Ipv4Addr>> = others
            .iter()
            .filter(|(_, network)| !network.public.is_empty())
            .map(|(installation, network)| (installation.clone(), network.public.clone()))
            .collect();
        let held: BTreeMap<String, String> = networks
            .iter()
            .flat_map(|(installation, addresses)| {
                addresses.iter().map(move |a| (a.to_string(), format!("{OTHER_INSTALLATION}{installation}")))
            })
            .collect();
        let table = &storage::tables::PUBLIC_ADDRESSES;
        let (gone, new) = self.store().read(|tx| {
            let current = tx.scan(table, "")?;
            let gone: Vec<String> = current
                .iter()
                .filter(|(address, holder)| holder.id.starts_with(OTHER_INSTALLATION) && !held.contains_key(address))
                .map(|(address, _)| address.clone())
                .collect();
            let mut new = Vec::new();
            for (address, holder) in &held {
                match current.iter().find(|(a, _)| a == address).map(|(_, h)| &h.id) {
                    None => new.push((address.clone(), holder.clone())),
                    Some(mine) if !mine.starts_with(OTHER_INSTALLATION) => {
                        tracing::warn!(%address, holder = %mine, other = %holder, "a public address is held here and by another installation's network in OVN");
                    }
                    Some(_) => {}
                }
            }
            Ok::<_, Error>((gone, new))
        })?;
        if gone.is_empty() && new.is_empty() {
            return Ok(networks);
        }
        self.store().write(|tx| {
            for address in &gone {
                if tx.get(table, address)?.is_some_and(|h| h.id.starts_with(OTHER_INSTALLATION)) {
                    tx.remove(table, address)?;
                }
            }
            // Taken meanwhile by this installation: left to it (and said at the next look).
            for (address, holder) in &new {
                if tx.get(table, address)?.is_none() {
                    tx.insert(table, address, &storage::NameRecord { id: holder.clone() })?;
                }
            }
            Ok::<_, Error>(())
        })?;
        Ok(networks)
    }

    /// Lists what the hosts and OVN hold that is not this installation's, and renews the public
    /// addresses kept out of allocation. Blocks on the hosts.
    pub fn inventory(&self) -> Result<Inventory> {
        let ours = self.installation()?.to_owned();
        let mut unreachable = Vec::new();
        // What the hosts hold under names Stratus gives, before reading any definition.
        let mut domains = Vec::new();
        for host in self.hosts().iter() {
            match host.driver.domains() {
                Ok(list) => domains.extend(list.into_iter().filter(|d| is_instance_name(&d.name)).map(|d| (host, d))),
                Err(error) => unreachable.push((host.id.clone(), error.to_string())),
            }
        }
        // Instance ids are random and never reused: a name this store knows is this
        // installation's, whatever (or whether) it is marked. Only the others are read.
        let names: BTreeSet<&str> = domains.iter().map(|(_, d)| d.name.as_str()).collect();
        let known: BTreeSet<String> = self.store().read(|tx| {
            let mut known = BTreeSet::new();
            for name in names {
                if Self::find_instance(tx, name)?.is_some() {
                    known.insert(name.to_owned());
                }
            }
            Ok::<_, Error>(known)
        })?;
        let mut found: Vec<(Leftover, Option<Mark>)> = Vec::new();
        let mut foreign_domains = BTreeSet::new();
        for (host, domain) in domains.into_iter().filter(|(_, d)| !known.contains(&d.name)) {
            let facts = match host.driver.definition(&domain.name) {
                Ok(Some(xml)) => domain_facts(&xml),
                // Gone since the listing.
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(host = %host.id, domain = %domain.name, %error, "could not read the domain's definition");
                    continue;
                }
            };
            foreign_domains.insert(domain.name.clone());
            let leftover = Leftover {
                host: host.id.clone(),
                kind: ObjectKind::Domain,
                running: matches!(domain.state, PowerState::Running | PowerState::Paused | PowerState::Other),
                name: domain.name,
                owner: Owner::Unmarked,
                address: facts.address,
            };
            found.push((leftover, facts.mark));
        }
        // Other installations' networks in OVN whose routers name their data dir: orphans once
        // it is gone. (Rows older than that mark are removed by `--installation` only.)
        let others = self.other_networks_in_ovn();
        for (installation, network) in others.iter().flatten() {
            let Some(data_dir) = network.data_dir.clone() else { continue };
            let installation = installation.clone();
            let leftover = Leftover {
                host: "ovn".into(),
                kind: ObjectKind::OvnNetwork,
                name: format!("network-of-{installation}"),
                owner: Owner::Unmarked,
                running: false,
                address: None,
            };
            found.push((leftover, Some(Mark { installation, data_dir: Some(data_dir) })));
        }
        let leftovers = classify(&ours, found, installation_is_live);
        let ovn_networks = match &others {
            Some(others) => self.reserve_public_addresses(others)?,
            None => BTreeMap::new(),
        };
        let inventory = Inventory { installation: ours, leftovers, unreachable, ovn_networks };
        let mut foreign = self.foreign.write().unwrap_or_else(|p| p.into_inner());
        foreign.domains = foreign_domains;
        foreign.taken = true;
        Ok(inventory)
    }

    /// Called by each sweep with the domains no instance of this store accounts for: when
    /// that set changed, the inventory is taken again (and said in the log).
    pub(crate) fn note_unknown_domains(&self, unknown: &[(String, String)]) {
        let names: BTreeSet<String> =
            unknown.iter().map(|(_, name)| name.clone()).filter(|n| is_instance_name(n)).collect();
        let changed = {
            let foreign = self.foreign.read().unwrap_or_else(|p| p.into_inner());
            foreign.domains != names || !foreign.taken
        };
        if !changed {
            return;
        }
        match self.inventory() {
            Ok(inventory) => {
                if let Some(report) = inventory.report() {
                    tracing::warn!("{report}");
                }
            }
            Err(error) => tracing::warn!(%error, "taking the inventory of the hosts failed"),
        }
        let mut foreign = self.foreign.write().unwrap_or_else(|p| p.into_inner());
        // Whatever the outcome, ask again only when the set changes.
        foreign.domains = names;
        foreign.taken = true;
    }

    /// Removes the leftovers `selection` picks (or, with `dry_run`, only says which). Never
    /// touches this installation's objects. Blocks on the hosts.
    pub fn clean(&self, selection: &Selection, dry_run: bool) -> Result<Vec<CleanStep>> {
        let ours = self.installation()?.to_owned();
        if let Selection::Installation(id) = selection {
            if *id == ours {
                return Err(crate::invalid("installation", format!("{id} is this installation; it is never cleaned")));
            }
        }
        let inventory = self.inventory()?;
        let mut picked: Vec<Leftover> = inventory.leftovers.into_iter().filter(|l| selection.picks(l)).collect();
        // The installations whose networks in OVN go: their VPCs' metadata namespaces go too.
        let mut networks_going: BTreeSet<String> = picked
            .iter()
            .filter(|l| l.kind == ObjectKind::OvnNetwork)
            .filter_map(|l| l.owner.installation().map(str::to_owned))
            .collect();
        let network_picked = !networks_going.is_empty();
        // Domains first: their guests go before their network does.
        picked.sort_by_key(|l| l.kind);
        let mut steps = Vec::new();
        for leftover in picked {
            let error = if dry_run { None } else { self.remove_leftover(&leftover).err() };
            steps.push(CleanStep { leftover, error });
        }
        // Another installation's logical network goes with it (its guests are gone above).
        if let (Selection::Installation(id), Some(sync), false) = (selection, &self.ovn, network_picked) {
            let current = sync.northbound.current(id).map_err(|e| Error::Io(format!("OVN: {e}")))?;
            if !current.is_empty() {
                let leftover = Leftover {
                    host: "ovn".into(),
                    kind: ObjectKind::OvnNetwork,
                    name: format!(
                        "{} routers, {} switches, {} port groups",
                        current.routers.len(),
                        current.switches.len(),
                        current.port_groups.len()
                    ),
                    owner: Owner::Gone { installation: id.clone() },
                    running: false,
                    address: None,
                };
                let forget = ovn::Desired { installation: id.clone(), ..Default::default() };
                let error =
                    if dry_run { None } else { sync.northbound.reconcile(&forget).err().map(|e| e.to_string()) };
                steps.push(CleanStep { leftover, error });
            }
        }
        if let (Selection::Installation(id), Some(_)) = (selection, &self.ovn) {
            networks_going.insert(id.clone());
        }
        // Their VPCs' metadata namespaces on this machine, found by their plugs' marks.
        for installation in &networks_going {
            for vpc in crate::vpc_network::marked_metadata_ends(installation).unwrap_or_default() {
                let leftover = Leftover {
                    host: LOCAL.into(),
                    kind: ObjectKind::MetadataNamespace,
                    name: crate::vpc_network::metadata_namespace(&vpc),
                    owner: Owner::Gone { installation: installation.clone() },
                    running: false,
                    address: None,
                };
                let error = if dry_run { None } else { crate::vpc_network::remove_metadata_end(&vpc).err() };
                steps.push(CleanStep { leftover, error });
            }
        }
        if !dry_run {
            self.inventory()?;
        }
        Ok(steps)
    }

    fn remove_leftover(&self, leftover: &Leftover) -> std::result::Result<(), String> {
        let host = || self.hosts().get(&leftover.host).ok_or_else(|| format!("no host {}", leftover.host));
        match leftover.kind {
            ObjectKind::Domain => {
                let host = host()?;
                crate::instances::tolerate_missing(host.driver.destroy(&leftover.name)).map_err(|e| e.to_string())?;
                host.driver.undefine(&leftover.name).map_err(|e| e.to_string())
            }
            // Another installation's whole network in OVN (its namespaces: in `clean`).
            ObjectKind::OvnNetwork => {
                let (Some(sync), Some(installation)) = (&self.ovn, leftover.owner.installation()) else {
                    return Ok(());
                };
                let forget = ovn::Desired { installation: installation.to_owned(), ..Default::default() };
                sync.northbound.reconcile(&forget).map(|_| ()).map_err(|e| e.to_string())
            }
            // Removed in `clean`.
            ObjectKind::MetadataNamespace => Ok(()),
        }
    }
}

/// What the inventory keeps between sweeps.
#[derive(Debug, Default)]
pub(crate) struct Foreign {
    /// The `i-…` domains not of this store that the last look saw.
    pub domains: BTreeSet<String>,
    /// Whether an inventory was taken at all.
    pub taken: bool,
}

/// How `PUBLIC_ADDRESSES` names the holder of an address another installation's network in OVN
/// holds: `installation:{id}` (no account's, so never an Elastic IP here).
const OTHER_INSTALLATION: &str = "installation:";

/// Other installations' logical networks in OVN (rows marked with another installation) that
/// hold addresses of `public` on their gateway ports and NAT rules, with those addresses. One
/// `ovn-nbctl` call.
fn other_installations_in_ovn(
    northbound: &ovn::Northbound,
    ours: &str,
    public: &crate::addresses::PublicNetwork,
) -> std::result::Result<BTreeMap<String, OtherNetwork>, String> {
    let condition = format!("external_ids:{}!=\"{ours}\"", ovn::INSTALLATION);
    let columns = ["--format=csv", "--data=bare", "--no-heading"];
    let mut args: Vec<&str> = columns.to_vec();
    args.extend(["--columns=external_ids", "find", "Logical_Router", &condition]);
    args.extend(["--", "--columns=external_ids,networks", "find", "Logical_Router_Port", &condition]);
    args.extend(["--", "--columns=external_ids,external_ip", "find", "NAT", &condition]);
    let output = northbound.nbctl(&args).map_err(|e| e.to_string())?;
    Ok(other_networks(&output, public))
}

/// Another installation's logical network in OVN, as its rows say.
#[derive(Debug, Default, PartialEq)]
struct OtherNetwork {
    /// The data dir its routers name (none on rows older than the mark).
    data_dir: Option<String>,
    /// The addresses of this public network its gateway ports and NAT rules hold.
    public: BTreeSet<Ipv4Addr>,
}

/// [`other_installations_in_ovn`]'s reading of `ovn-nbctl`'s CSV rows (external ids, then
/// addresses), each marked with its installation.
fn other_networks(output: &str, public: &crate::addresses::PublicNetwork) -> BTreeMap<String, OtherNetwork> {
    let mark = format!("{}=", ovn::INSTALLATION);
    let dir_mark = format!("{}=", ovn::DATA_DIR);
    let mut found: BTreeMap<String, OtherNetwork> = BTreeMap::new();
    for line in output.lines() {
        // Rows without the mark are not Stratus's (`!=` matches them too).
        let Some(installation) = line.split([' ', ',', '"']).find_map(|word| word.strip_prefix(mark.as_str())) else {
            continue;
        };
        let network = found.entry(installation.to_owned()).or_default();
        // A data dir is a path, spaces and all: it runs to the next of the row's keys (all
        // Stratus's start `stratus-`; OVSDB lists a map's keys in order) or the field's end.
        if let Some(start) = line.find(dir_mark.as_str()) {
            let rest = line[start + dir_mark.len()..].trim_start_matches('"');
            let end = [rest.find(" stratus-"), rest.find(['"', ','])].into_iter().flatten().min().unwrap_or(rest.len());
            network.data_dir = Some(rest[..end].to_owned());
        }
        let addresses = line.split([' ', ',', '"', '/']);
        network
            .public
            .extend(addresses.filter_map(|word| word.parse::<Ipv4Addr>().ok()).filter(|a| public.contains(*a)));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef";
    const OTHER: &str = "fedcba9876543210";

    #[test]
    fn a_domain_mark_survives_libvirts_rendering() {
        let metadata = owner_metadata(ID, Path::new("/srv/it's data"), "172.31.0.4");
        assert!(domain_facts(&format!("<domain><name>i-1</name>{metadata}</domain>")).mark.is_some());
        // libvirt writes its own rendering back: double quotes, its indentation.
        let rendered = format!(
            "<domain type=\"qemu\">\n  <name>i-1</name>\n  <metadata>\n    <stratus:owner xmlns:stratus=\"{OWNER_NS}\" installation=\"{ID}\" data-dir=\"/srv/it&apos;s data\" address=\"172.31.0.4\"/>\n  </metadata>\n  <os><cmdline>console=ttyS0 ip=172.31.0.9::172.31.0.1:255.255.240.0:i-1:eth0:off</cmdline></os>\n</domain>"
        );
        let facts = domain_facts(&rendered);
        assert_eq!(facts.mark, Some(Mark { installation: ID.into(), data_dir: Some("/srv/it's data".into()) }));
        assert_eq!(facts.address, Some(Ipv4Addr::new(172, 31, 0, 4)), "the mark's address first");
    }

    #[test]
    fn an_unmarked_domain_still_tells_its_kernel_address() {
        let xml = "<domain><name>i-1</name><os><cmdline>console=ttyS0 ip=172.31.0.9::172.31.0.1:255.255.240.0:i-1:eth0:off</cmdline></os></domain>";
        let facts = domain_facts(xml);
        assert_eq!(facts.mark, None);
        assert_eq!(facts.address, Some(Ipv4Addr::new(172, 31, 0, 9)));
        // Another tool's metadata, or a forged id, is no mark.
        for other in [
            "<metadata><x:owner xmlns:x='urn:other' installation='0123456789abcdef'/></metadata>",
            &format!("<metadata><s:owner xmlns:s='{OWNER_NS}' installation='../../etc'/></metadata>"),
        ] {
            assert_eq!(domain_facts(&format!("<domain>{other}</domain>")).mark, None, "{other}");
        }
        assert_eq!(domain_facts("<domain><unclosed").mark, None);
    }

    fn found(kind: ObjectKind, name: &str, mark: Option<(&str, Option<&str>)>) -> (Leftover, Option<Mark>) {
        let leftover = Leftover {
            host: "h".into(),
            kind,
            name: name.into(),
            owner: Owner::Unmarked,
            running: false,
            address: None,
        };
        let mark = mark.map(|(id, dir)| Mark { installation: id.into(), data_dir: dir.map(str::to_owned) });
        (leftover, mark)
    }

    #[test]
    fn classification_keeps_ours_out_and_tells_live_from_gone() {
        let objects = vec![
            found(ObjectKind::Domain, "i-1", Some((ID, Some("/ours")))),
            found(ObjectKind::OvnNetwork, "network-of-ours", Some((ID, None))),
            found(ObjectKind::Domain, "i-2", Some((OTHER, Some("/live")))),
            // Rows older than the data-dir mark name none: their installation's domain does.
            found(ObjectKind::OvnNetwork, "network-of-other", Some((OTHER, None))),
            found(ObjectKind::Domain, "i-3", Some(("aaaaaaaaaaaaaaaa", Some("/removed")))),
            found(ObjectKind::OvnNetwork, "network-of-b", Some(("bbbbbbbbbbbbbbbb", None))),
            found(ObjectKind::Domain, "i-6", None),
        ];
        let live = |id: &str, dir: &str| id == OTHER && dir == "/live";
        let leftovers = classify(ID, objects, live);
        let owners: Vec<(&str, &Owner)> = leftovers.iter().map(|l| (l.name.as_str(), &l.owner)).collect();
        let live_owner = Owner::Live { installation: OTHER.into(), data_dir: "/live".into() };
        assert_eq!(
            owners,
            vec![
                ("i-2", &live_owner),
                ("i-3", &Owner::Gone { installation: "aaaaaaaaaaaaaaaa".into() }),
                ("i-6", &Owner::Unmarked),
                ("network-of-b", &Owner::Gone { installation: "bbbbbbbbbbbbbbbb".into() }),
                ("network-of-other", &live_owner),
            ]
        );
        let orphans: Vec<&str> =
            leftovers.iter().filter(|l| Selection::Orphans.picks(l)).map(|l| l.name.as_str()).collect();
        assert_eq!(orphans, ["i-3", "i-6", "network-of-b"]);
        let named: Vec<&str> = leftovers
            .iter()
            .filter(|l| Selection::Installation(OTHER.into()).picks(l))
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(named, ["i-2", "network-of-other"]);
    }

    #[test]
    fn the_report_says_what_to_run() {
        let leftover = |name: &str, owner: Owner| Leftover {
            host: "h-1".into(),
            kind: ObjectKind::Domain,
            name: name.into(),
            owner,
            running: true,
            address: Some(Ipv4Addr::new(172, 31, 0, 4)),
        };
        assert_eq!(Inventory::default().report(), None, "nothing to say");
        let public = crate::addresses::PublicNetwork::default();
        let rows = "\"stratus-data-dir=/srv/old data stratus-installation=aaaaaaaaaaaaaaaa stratus-owner=vpc-1\"\n\
                    \"stratus-installation=aaaaaaaaaaaaaaaa stratus-owner=vpc-1\",198.51.100.2/24\n\
                    stratus-installation=aaaaaaaaaaaaaaaa,\"10.0.1.1/24\"\n\
                    \"stratus-owner=eipassoc-1 stratus-installation=bbbbbbbbbbbbbbbb\",198.51.100.7\n\
                    operator=mine,198.51.100.9\n\
                    stratus-installation=cccccccccccccccc,203.0.113.2/24\n";
        let found = other_networks(rows, &public);
        let addresses = |list: &[[u8; 4]]| list.iter().map(|a| Ipv4Addr::from(*a)).collect::<BTreeSet<_>>();
        assert_eq!(
            found,
            BTreeMap::from([
                (
                    "aaaaaaaaaaaaaaaa".to_owned(),
                    OtherNetwork { data_dir: Some("/srv/old data".into()), public: addresses(&[[198, 51, 100, 2]]) }
                ),
                (
                    "bbbbbbbbbbbbbbbb".to_owned(),
                    OtherNetwork { data_dir: None, public: addresses(&[[198, 51, 100, 7]]) }
                ),
                ("cccccccccccccccc".to_owned(), OtherNetwork::default()),
            ]),
            "rows of Stratus's only, public addresses of this pool only, the data dir whole"
        );
        let networks = found.into_iter().filter(|(_, n)| !n.public.is_empty()).map(|(i, n)| (i, n.public)).collect();
        let only_networks = Inventory { ovn_networks: networks, ..Default::default() };
        let report = only_networks.report().expect("other installations' networks are said");
        assert!(report.contains("installation aaaaaaaaaaaaaaaa: public addresses 198.51.100.2;"), "{report}");
        assert!(report.contains("`stratus host clean --installation bbbbbbbbbbbbbbbb`"), "{report}");
        let inventory = Inventory {
            installation: ID.into(),
            leftovers: vec![
                leftover("i-1", Owner::Gone { installation: OTHER.into() }),
                leftover("i-2", Owner::Live { installation: OTHER.into(), data_dir: "/d".into() }),
            ],
            unreachable: vec![],
            ovn_networks: Default::default(),
        };
        let report = inventory.report().unwrap();
        assert!(
            report.contains("i-1") && report.contains("holds 172.31.0.4") && report.contains(", running"),
            "{report}"
        );
        assert!(report.contains("stratus host clean --orphans --dry-run"), "{report}");
        assert!(report.contains(&format!("stratus host clean --installation {OTHER}")), "{report}");
        let live = |name: &str, installation: &str| {
            leftover(name, Owner::Live { installation: installation.into(), data_dir: "/d".into() })
        };
        let several =
            Inventory { leftovers: vec![live("i-1", OTHER), live("i-2", ID), live("i-3", OTHER)], ..inventory };
        assert_eq!(several.hint().matches(&format!("--installation {OTHER}")).count(), 1, "one line per installation");
    }
}
