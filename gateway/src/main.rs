//! `stratus`: serve the EC2 API, or administer a data dir.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use backend::accounts::Credentials;
use backend::ownership::Selection;
use backend::Backend;
use clap::{Args, Parser, Subcommand};
use gateway::admin::{self, AdminAnswer, AdminRequest};
use gateway::config::Config;
use gateway::import::ImportArgs;
use gateway::server::{serve, AppState};
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(name = "stratus", version, about = "An EC2-compatible control plane for KVM clouds")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// Where Stratus keeps its state.
    #[arg(long, default_value = "./stratus-data", env = "STRATUS_DATA_DIR")]
    data_dir: PathBuf,
    /// Optional TOML config (regions, zones, instance types, limits).
    #[arg(long, env = "STRATUS_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the EC2 Query API.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8773")]
        listen: SocketAddr,
        /// Where Prometheus scrapes `GET /metrics` (default 127.0.0.1:9773, which is skipped
        /// with a warning when taken); `off` serves none.
        #[arg(long, value_name = "ADDR|off")]
        metrics_listen: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Manage accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Manage machine images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Check this machine and the hosts: daemons, accelerator, OVN, and what other
    /// installations left on the hosts; prints what to do. Exits 1 when something needs it.
    Doctor {
        #[command(flatten)]
        common: Common,
    },
    /// Look after the hosts.
    #[command(subcommand)]
    Host(HostCommand),
    /// Move the state between stores.
    #[command(subcommand)]
    Store(StoreCommand),
    /// The replicas sharing a PostgreSQL store.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Which replica leads the conductor, at which epoch, and for how much longer unrenewed.
    Status {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy every record and the metric history from the store the config names (the source,
    /// with no server running on it) into an empty one (`--to-config`'s store: a new data dir's
    /// redb file, or a new PostgreSQL database), then compare both record by record. Start the
    /// server with the new config afterwards.
    Copy {
        /// The config naming the target store (`[storage]`).
        #[arg(long)]
        to_config: Option<PathBuf>,
        /// The target's data dir (for a redb target; default: the source's).
        #[arg(long)]
        to_data_dir: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum HostCommand {
    /// Remove what other Stratus installations left on the hosts: their domains (guests are
    /// powered off), network filters and DHCP entries. This installation's objects are never
    /// touched.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["orphans", "installation"])))]
    Clean {
        /// Objects without a mark, and those of installations whose data dir is gone.
        #[arg(long)]
        orphans: bool,
        /// Everything of this other installation, even if its data dir still exists (its
        /// running guests are destroyed).
        #[arg(long, value_name = "ID")]
        installation: Option<String>,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Copy a root disk (qcow2 or raw) and optional kernel and initrd into the data dir and
    /// register them as a public image; prints the image id.
    Import {
        file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        kernel: Option<PathBuf>,
        #[arg(long, requires = "kernel")]
        initrd: Option<PathBuf>,
        /// Kernel command line for direct boot (Stratus adds the network's `ip=`).
        #[arg(long, requires = "kernel", allow_hyphen_values = true)]
        cmdline: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account and print its keys.
    Create {
        name: String,
        /// May call the admin-only extension actions.
        #[arg(long)]
        admin: bool,
        /// Twelve digits; generated unless given.
        #[arg(long)]
        account_id: Option<String>,
        #[arg(long, requires = "secret_access_key")]
        access_key_id: Option<String>,
        #[arg(long, requires = "access_key_id")]
        secret_access_key: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// List accounts and their access key ids.
    List {
        #[command(flatten)]
        common: Common,
    },
}

/// A heap profile of the whole run, for breaking the memory down (`cargo build --release
/// --features dhat-heap`): `dhat-heap.json` in the working directory when the server stops
/// (SIGTERM); `docs/benchmarks.md` tells how it was read.
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static HEAP: dhat::Alloc = dhat::Alloc;

/// jemalloc: why, in `gateway::heap`.
#[cfg(not(feature = "dhat-heap"))]
#[global_allocator]
static HEAP: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    #[cfg(feature = "dhat-heap")]
    let profiler = dhat::Profiler::new_heap();
    // Every request logs a line: a thread of its own writes the lines in batches, off the
    // request path (`gateway::log_writer` tells why not tracing-appender's channel).
    let (writer, flush_guard) =
        match gateway::log_writer::batched(std::io::stderr(), gateway::log_writer::Limits::default()) {
            Ok(made) => made,
            Err(error) => {
                eprintln!("stratus: starting the log's thread: {error}");
                std::process::exit(1);
            }
        };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer)
        .init();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|runtime| runtime.block_on(run(Cli::parse())));
    drop(flush_guard);
    #[cfg(feature = "dhat-heap")]
    drop(profiler);
    if let Err(error) = outcome {
        eprintln!("stratus: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { listen, metrics_listen, common } => run_server(listen, metrics_listen, common).await,
        Command::Account(AccountCommand::Create {
            name,
            admin,
            account_id,
            access_key_id,
            secret_access_key,
            common,
        }) => {
            let access_key = access_key_id.zip(secret_access_key);
            let request = AdminRequest::CreateAccount { name, admin, account_id, access_key };
            match admin_call(&common, request).await? {
                AdminAnswer::Account(c) => {
                    println!(
                        "account_id = {}\naws_access_key_id = {}\naws_secret_access_key = {}",
                        c.account_id, c.access_key_id, c.secret_access_key
                    );
                    Ok(())
                }
                other => unexpected(other),
            }
        }
        Command::Image(ImageCommand::Import { file, name, kernel, initrd, cmdline, common }) => {
            let config = Config::load(common.config.as_deref())?;
            let args = ImportArgs { file, name, kernel, initrd, cmdline };
            let id = gateway::import::import(&common.data_dir, &config.storage, args, config.topology()).await?;
            println!("{id}");
            Ok(())
        }
        Command::Doctor { common } => {
            let answer = admin_call(&common, AdminRequest::Doctor).await?;
            let AdminAnswer::Doctor(report) = answer else { return unexpected(answer) };
            let checks = gateway::doctor::checks(&report, &gateway::doctor::Machine::this());
            let (text, problems) = gateway::doctor::render(&report, &checks);
            print!("{text}");
            if problems > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Host(HostCommand::Clean { orphans: _, installation, dry_run, common }) => {
            // clap requires exactly one of the two.
            let selection = match installation {
                Some(id) => Selection::Installation(id),
                None => Selection::Orphans,
            };
            let answer = admin_call(&common, AdminRequest::Clean { selection, dry_run }).await?;
            let AdminAnswer::Cleaned(steps) = answer else { return unexpected(answer) };
            print!("{}", gateway::doctor::render_clean(&steps, dry_run));
            if steps.iter().any(|s| s.error.is_some()) {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Cluster(ClusterCommand::Status { common }) => {
            let config = Config::load(common.config.as_deref())?;
            if config.storage.postgres_url()?.is_none() {
                println!("one process on the redb file in {}: no replicas", common.data_dir.display());
                return Ok(());
            }
            let (holder, cluster) = tokio::task::spawn_blocking(move || -> Result<_> {
                let store = admin::open_store(&common.data_dir, &config.storage)?;
                Ok((store.lease_holder(backend::leadership::LEASE)?, backend::leadership::control_plane(&store)?))
            })
            .await??;
            match &holder {
                Some((replica, epoch, left)) => {
                    println!(
                        "leader: {replica} (epoch {epoch}; its lease runs {:.1} s more unrenewed)",
                        left.as_secs_f64()
                    )
                }
                None => println!("leader: none (no replica holds the conductor lease)"),
            }
            let now_ms = backend::now_ms();
            println!("{:<12} {:<14} REPLICA", "STATE", "LAST SEEN");
            for replica in cluster.replicas {
                let ago = format!("{:.1} s ago", (now_ms - replica.last_seen_ms).max(0) as f64 / 1000.0);
                println!("{:<12} {ago:<14} {}", replica.state, replica.id);
            }
            Ok(())
        }
        Command::Store(StoreCommand::Copy { to_config, to_data_dir, common }) => {
            let from = Config::load(common.config.as_deref())?;
            let to = Config::load(to_config.as_deref())?;
            let to_dir = to_data_dir.unwrap_or_else(|| common.data_dir.clone());
            if from.storage == to.storage && to_dir == common.data_dir {
                bail!("the source and the target are the same store: name another with --to-config or --to-data-dir");
            }
            std::fs::create_dir_all(&to_dir).with_context(|| format!("creating {}", to_dir.display()))?;
            let report = tokio::task::spawn_blocking(move || -> Result<storage::copy::CopyReport> {
                let source = admin::open_store(&common.data_dir, &from.storage).context("the source store")?;
                let target = admin::open_store(&to_dir, &to.storage).context("the target store")?;
                // A redb file is held by its server; a PostgreSQL store is in use while a
                // replica holds the conductor's lease.
                for store in [&source, &target] {
                    if let Some((replica, _, _)) = store.lease_holder(backend::leadership::LEASE)? {
                        bail!("a server ({replica}) runs on that PostgreSQL store: stop every replica first");
                    }
                }
                Ok(source.copy_to(&target)?)
            })
            .await??;
            println!("copied and verified: {report}");
            Ok(())
        }
        Command::Account(AccountCommand::List { common }) => {
            match admin_call(&common, AdminRequest::ListAccounts).await? {
                AdminAnswer::Accounts(accounts) => {
                    println!("{:<14} {:<24} {:<6} ACCESS KEYS", "ACCOUNT", "NAME", "ADMIN");
                    for a in accounts {
                        println!("{:<14} {:<24} {:<6} {}", a.account_id, a.name, a.admin, a.access_key_ids.join(","));
                    }
                    Ok(())
                }
                other => unexpected(other),
            }
        }
    }
}

fn unexpected(answer: AdminAnswer) -> Result<()> {
    match answer {
        AdminAnswer::Error(message) => bail!("{message}"),
        other => bail!("unexpected answer {other:?}"),
    }
}

async fn admin_call(common: &Common, request: AdminRequest) -> Result<AdminAnswer> {
    let config = Config::load(common.config.as_deref())?;
    let public = config.network.public_network()?;
    let db = config.network.ovn();
    let ovn = db.as_deref().map(|db| (db, public));
    admin::run_with(&common.data_dir, &config.storage, request, config.resolved_topology(), ovn).await
}

/// Writes the admin keys as an aws credentials file (profile `stratus`), readable by us only.
fn write_credentials(path: &Path, credentials: &Credentials) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    write!(
        file,
        "# Stratus admin account {}\n[stratus]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        credentials.account_id, credentials.access_key_id, credentials.secret_access_key
    )?;
    Ok(())
}

/// The access key and secret that `write_credentials` wrote, for the console's first sign-in.
fn admin_key(path: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let value = |name: &str| {
        text.lines().find_map(|line| {
            Some(line.split_once('=')?).filter(|(k, _)| k.trim() == name).map(|(_, v)| v.trim().to_owned())
        })
    };
    Some((value("aws_access_key_id")?, value("aws_secret_access_key")?))
}

/// How long a start waits for the hosts' inventory before it serves anyway.
const INVENTORY_WAIT: Duration = Duration::from_secs(15);

/// The metrics listener `--metrics-listen` asks for: none for `off`; the default address
/// when not given, left out with a warning if another process holds it (a second Stratus on
/// this machine); an address given that cannot be bound is an error.
fn metrics_listener(asked: Option<&str>) -> Result<Option<tokio::net::TcpListener>> {
    const DEFAULT: &str = "127.0.0.1:9773";
    let address: SocketAddr = match asked {
        Some("off") => return Ok(None),
        Some(text) => text.parse().with_context(|| format!("--metrics-listen {text}: expected ADDR:PORT or off"))?,
        None => DEFAULT.parse()?,
    };
    match gateway::server::listen(address) {
        Ok(listener) => Ok(Some(listener)),
        Err(error) if asked.is_none() => {
            tracing::warn!(%error, "cannot serve Prometheus metrics on {DEFAULT}; choose another address with --metrics-listen");
            Ok(None)
        }
        Err(error) => Err(error).with_context(|| format!("listening for metrics on {address}")),
    }
}

async fn run_server(listen: SocketAddr, metrics_listen: Option<String>, common: Common) -> Result<()> {
    gateway::heap::check_options();
    gateway::heap::spawn_trimmer(Duration::from_secs(5));
    let config = Config::load(common.config.as_deref())?;
    let data_dir = &common.data_dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let store = admin::open_store(data_dir, &config.storage)?;
    let replicated = store.is_postgres();
    let mut backend = Backend::new(store, config.resolved_topology())
        .with_data_dir(data_dir)
        .with_stop_timeout(Duration::from_secs(config.instances.stop_timeout_secs))
        .with_process_name(format!("{}/{listen}", hostname()));
    // On PostgreSQL any number of replicas serve; the conductor's work takes turns.
    if replicated {
        let replica = format!("{}/{listen}/{:08x}", hostname(), rand::random::<u32>());
        tracing::info!(%replica, lease_secs = config.storage.lease_secs, "replica");
        let ttl = Duration::from_secs(config.storage.lease_secs.max(1));
        backend = backend.with_leadership(Arc::new(backend::leadership::Leadership::new(replica, ttl)));
    }
    let ovn = config.network.ovn();
    if let Some(db) = &ovn {
        backend = backend.with_ovn(db);
    }
    if let Some(chassis) = &config.network.gateway_chassis {
        backend = backend.with_gateway_chassis(chassis);
    }
    backend = backend.with_public_network(config.network.public_network()?);
    let backend = Arc::new(backend);
    // Bind first, so that a start that cannot listen leaves no admin keys behind.
    let listener = gateway::server::listen(listen).with_context(|| format!("listening on {listen}"))?;
    let metrics_listener = metrics_listener(metrics_listen.as_deref())?;
    let credentials_path = data_dir.join("admin-credentials");
    // Another installation's network in OVN keeps its public addresses: none is handed out
    // here (the first default VPC's router takes one), or both routers would answer for it.
    let reserving = Arc::clone(&backend);
    tokio::task::spawn_blocking(move || reserving.reserve_public_addresses_of_others())
        .await?
        .context("reading other installations' networks in OVN")?;
    let bootstrap = Arc::clone(&backend);
    if let Some(admin) = tokio::task::spawn_blocking(move || bootstrap.bootstrap_admin()).await?? {
        write_credentials(&credentials_path, &admin).context("writing admin-credentials")?;
    }
    // Accounts made before VPCs were records get their default VPC's records now, and default
    // VPCs made on the hosts' old bridge move to OVN.
    let upgrading = Arc::clone(&backend);
    tokio::task::spawn_blocking(move || upgrading.ensure_default_networks())
        .await?
        .context("making the accounts' default VPCs")?;
    // What other installations left on the hosts is said once, before the first request. A
    // host that hangs must not keep the API down: after a while the inventory finishes in the
    // background.
    let taking = Arc::clone(&backend);
    let inventory = tokio::task::spawn_blocking(move || {
        taking.publish_installation()?;
        taking.inventory()
    });
    let inventory = match tokio::time::timeout(INVENTORY_WAIT, inventory).await {
        Ok(taken) => Some(taken?.context("taking the inventory of the hosts")?),
        Err(_) => {
            tracing::warn!("the hosts are slow to answer; their inventory goes on in the background");
            None
        }
    };
    tracing::info!(installation = %backend.installation()?, "installation");
    if let Some(report) = inventory.as_ref().and_then(|i| i.report()) {
        tracing::warn!("{report}");
    }
    if let Some(leadership) = backend.leadership().cloned() {
        // The first try before the conductor starts: a lone replica leads from its first sweep.
        let (trying, store_of) = (Arc::clone(&leadership), Arc::clone(&backend));
        tokio::task::spawn_blocking(move || trying.renew(store_of.store())).await?;
        let weak = Arc::downgrade(&backend);
        leadership.keep(move || weak.upgrade());
    }
    backend.start_conductor(Duration::from_millis(config.instances.sweep_interval_ms));
    backend.start_monitoring(
        Duration::from_millis(config.monitoring.interval_ms),
        backend::monitoring::Retention { days: config.monitoring.retention_days },
    );
    for host in backend.hosts().iter() {
        tracing::info!(host = %host.id, uri = %host.config.uri, zone = %host.zone, accelerator = ?host.accelerator, "host");
    }
    let region = config.topology().regions[0].name.clone();
    let metadata = Arc::new(gateway::metadata::MetadataService::new(Arc::clone(&backend), region));
    // Guests reach the service in their VPC's namespace (with OVN).
    if ovn.is_some() {
        let plane = gateway::vpc_metadata::MetadataPlane::new(Arc::clone(&backend), Arc::clone(&metadata));
        tokio::spawn(Arc::new(plane).run());
    }
    let admin_socket = admin::bind(data_dir)?;
    let admin_task = tokio::spawn(admin::serve(admin_socket, Arc::clone(&backend)));

    let region = &config.topology().regions[0].name;
    println!("Stratus is serving the EC2 API on http://{listen} (data dir {})", data_dir.display());
    println!("Admin credentials: {}", credentials_path.display());
    if config.console.enabled {
        match admin_key(&credentials_path) {
            Some((key, secret)) => println!(
                "Web console: http://{listen}/console/ (sign in with access key {key} and secret key {secret})"
            ),
            None => println!("Web console: http://{listen}/console/ (sign in with an account's access key)"),
        }
    }
    println!(
        "Try: AWS_SHARED_CREDENTIALS_FILE={} aws --profile stratus --region {region} --endpoint-url http://{listen} ec2 describe-regions",
        credentials_path.display()
    );
    if let Some(inventory) = inventory.filter(|i| !i.leftovers.is_empty()) {
        println!(
            "The hosts hold {} object(s) of other Stratus installations (see the log above, or `stratus doctor`):\n{}",
            inventory.leftovers.len(),
            inventory.hint()
        );
    }

    let mut terminate = signal(SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    };
    if let Some(metrics) = metrics_listener {
        let address = metrics.local_addr()?;
        println!("Prometheus metrics: http://{address}/metrics");
        let exporter = Arc::new(gateway::prometheus::Exporter::new(Arc::clone(&backend)));
        tokio::spawn(gateway::prometheus::serve(metrics, exporter));
    }
    let state = AppState::new(Arc::clone(&backend), config.limits.clone()).with_console(&config.console);
    serve(listener, Arc::new(state), shutdown).await;
    if let Some(leadership) = backend.leadership().cloned() {
        let leaving = Arc::clone(&backend);
        let released = tokio::task::spawn_blocking(move || leadership.leave(leaving.store())).await?;
        if let Err(error) = released {
            tracing::warn!(%error, "could not hand the conductor lease over; it expires by itself");
        }
    }
    admin_task.abort();
    let _ = std::fs::remove_file(admin::socket_path(data_dir));
    Ok(())
}

/// This machine's name, for naming its replica.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}
