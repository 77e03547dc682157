//! Admin operations, whether or not a server holds the data dir.
//!
//! redb allows one process per database file. The admin CLI therefore opens the file itself
//! when it is free, and otherwise talks to the server that holds it over `admin.sock` in the
//! data dir (mode 0600: whoever can read the data dir can administer it anyway). The protocol
//! is one JSON request line and one JSON answer line per connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use backend::accounts::{AccountSummary, Credentials, NewAccount};
use backend::images::NewImage;
use backend::ownership::{CleanStep, Inventory, Selection};
use backend::Backend;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    CreateAccount {
        name: String,
        admin: bool,
        account_id: Option<String>,
        access_key: Option<(String, String)>,
    },
    ListAccounts,
    /// Registers files already copied under the data dir as a public image.
    ImportImage {
        id: String,
        name: String,
        disk: String,
        kernel: Option<String>,
        initrd: Option<String>,
        cmdline: Option<String>,
        owned_files: Vec<String>,
    },
    /// What the hosts hold that is not this installation's, and how the hosts answer.
    Doctor,
    /// Removes leftovers of other installations (`stratus host clean`).
    Clean {
        selection: Selection,
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminAnswer {
    Account(Credentials),
    Accounts(Vec<AccountSummary>),
    Image { id: String, name: String, owner: String },
    Doctor(HostsReport),
    Cleaned(Vec<CleanStep>),
    Error(String),
}

/// One host as `stratus doctor` sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostCheck {
    pub id: String,
    pub uri: String,
    pub accelerator: String,
    /// `None` when it answered; else why not.
    pub error: Option<String>,
    pub domains: usize,
}

/// What the backend tells `stratus doctor`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostsReport {
    pub data_dir: String,
    pub hosts: Vec<HostCheck>,
    pub inventory: Inventory,
    /// The OVN northbound database, when configured, and why it does not answer.
    #[serde(default)]
    pub ovn: Option<(String, Option<String>)>,
}

fn hosts_report(backend: &Backend) -> backend::Result<HostsReport> {
    let hosts = backend
        .hosts()
        .iter()
        .map(|host| {
            let answer = host.driver.host_info().and_then(|_| host.driver.domains());
            HostCheck {
                id: host.id.clone(),
                uri: host.config.uri.clone(),
                accelerator: format!("{:?}", host.accelerator).to_lowercase(),
                error: answer.as_ref().err().map(ToString::to_string),
                domains: answer.map_or(0, |d| d.len()),
            }
        })
        .collect();
    Ok(HostsReport {
        data_dir: backend.data_dir().display().to_string(),
        hosts,
        inventory: backend.inventory()?,
        ovn: backend.ovn_check(),
    })
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("stratus.redb")
}

/// The store the config names: the data dir's redb file (held by one process), or
/// PostgreSQL (shared by any number: replicas and commands).
pub fn open_store(data_dir: &Path, settings: &crate::config::StorageSettings) -> Result<storage::Store> {
    match settings.postgres_url()? {
        Some(url) => {
            storage::Store::open_postgres(url, &storage::PostgresOptions::with_connections(settings.connections))
                .with_context(|| format!("connecting to PostgreSQL ({})", redact(url)))
        }
        None => match storage::Store::open_with_cache(&database_path(data_dir), settings.cache_mib) {
            Err(storage::Error::Locked) => bail!(
                "another Stratus process is using the data dir {}; stop it first or choose another --data-dir",
                data_dir.display()
            ),
            other => other.with_context(|| format!("opening the database in {}", data_dir.display())),
        },
    }
}

/// A connection string without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:…{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.split_whitespace().filter(|part| !part.starts_with("password=")).collect::<Vec<_>>().join(" "),
    }
}

/// Runs one admin request against a backend.
pub fn execute(backend: &Backend, request: AdminRequest) -> AdminAnswer {
    let result = match request {
        AdminRequest::CreateAccount { name, admin, account_id, access_key } => {
            backend.create_account(NewAccount { name, admin, account_id, access_key }).map(AdminAnswer::Account)
        }
        AdminRequest::ListAccounts => backend.list_accounts().map(AdminAnswer::Accounts),
        AdminRequest::ImportImage { id, name, disk, kernel, initrd, cmdline, owned_files } => backend
            .import_image(NewImage {
                id: Some(id),
                name,
                disk,
                kernel,
                initrd,
                cmdline,
                owned_files,
                ..Default::default()
            })
            .map(|image| AdminAnswer::Image { id: image.id, name: image.name, owner: image.owner }),
        AdminRequest::Doctor => hosts_report(backend).map(AdminAnswer::Doctor),
        AdminRequest::Clean { selection, dry_run } => backend.clean(&selection, dry_run).map(AdminAnswer::Cleaned),
    };
    result.unwrap_or_else(|e| AdminAnswer::Error(e.to_string()))
}

/// Serves the admin socket until the task is dropped.
pub async fn serve(listener: UnixListener, backend: Arc<Backend>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let backend = Arc::clone(&backend);
        tokio::spawn(async move {
            if let Err(error) = answer(stream, backend).await {
                tracing::warn!(%error, "admin connection failed");
            }
        });
    }
}

async fn answer(stream: UnixStream, backend: Arc<Backend>) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(64 * 1024)).read_line(&mut line).await?;
    let answer = match serde_json::from_str::<AdminRequest>(&line) {
        Ok(request) => tokio::task::spawn_blocking(move || execute(&backend, request)).await?,
        Err(e) => AdminAnswer::Error(format!("bad admin request: {e}")),
    };
    let mut text = serde_json::to_string(&answer)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    Ok(())
}

/// Binds the admin socket; any file already there is stale, as we hold the database.
pub fn bind(data_dir: &Path) -> Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Runs a request from the CLI: on the database directly if free, else through the server.
pub async fn run(
    data_dir: &Path,
    storage: &crate::config::StorageSettings,
    request: AdminRequest,
    topology: backend::Topology,
) -> Result<AdminAnswer> {
    run_with(data_dir, storage, request, topology, None).await
}

/// The network settings an offline admin command needs: the OVN northbound database, and the
/// public network new default VPCs' gateways take addresses from.
pub type OfflineNetwork<'a> = Option<(&'a str, backend::addresses::PublicNetwork)>;

/// As [`run`], with the OVN northbound database the config names (`stratus doctor` checks it).
/// How long a command waits for a server that holds the data dir to open its admin socket.
const ADMIN_SOCKET_WAIT: Duration = Duration::from_secs(30);

pub async fn run_with(
    data_dir: &Path,
    storage: &crate::config::StorageSettings,
    request: AdminRequest,
    topology: backend::Topology,
    ovn: OfflineNetwork<'_>,
) -> Result<AdminAnswer> {
    let db = database_path(data_dir);
    // PostgreSQL takes any number of clients: the command works on it directly, server or not.
    let store = if storage.postgres_url()?.is_some() {
        Some(open_store(data_dir, storage)?)
    } else if !db.exists() {
        bail!(
            "{} holds no Stratus data (run `stratus serve --data-dir {}` first)",
            data_dir.display(),
            data_dir.display()
        );
    } else {
        match storage::Store::open(&db) {
            Ok(store) => Some(store),
            Err(storage::Error::Locked) => None,
            Err(e) => return Err(anyhow!(e)).context(format!("opening {}", db.display())),
        }
    };
    if let Some(store) = store {
        let mut backend = Backend::new(store, topology).with_data_dir(data_dir);
        if let Some((db, public)) = ovn {
            backend = backend.with_ovn(db).with_public_network(public);
        }
        return Ok(tokio::task::spawn_blocking(move || execute(&backend, request)).await?);
    }
    let path = socket_path(data_dir);
    // A server that is still starting holds the database before it opens its socket (it takes
    // the hosts' inventory first): wait for it a while.
    let deadline = tokio::time::Instant::now() + ADMIN_SOCKET_WAIT;
    let stream = loop {
        match UnixStream::connect(&path).await {
            Ok(stream) => break stream,
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%error, "the server's admin socket does not answer yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => {
                return Err(error).with_context(|| {
                    format!(
                        "the data dir is held by another process, but its admin socket {} did not answer within {} s: \
                         if a `stratus serve` is still starting, try again; otherwise stop the process that holds it",
                        path.display(),
                        ADMIN_SOCKET_WAIT.as_secs()
                    )
                })
            }
        }
    };
    let (read, mut write) = stream.into_split();
    let mut text = serde_json::to_string(&request)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    serde_json::from_str(&line).context("reading the server's answer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_socket_serves_account_requests() {
        let dir = tempfile::tempdir().unwrap();
        let backend =
            Arc::new(Backend::new(storage::Store::open(&database_path(dir.path())).unwrap(), Default::default()));
        let server = tokio::spawn(serve(bind(dir.path()).unwrap(), Arc::clone(&backend)));
        let create =
            AdminRequest::CreateAccount { name: "team".into(), admin: false, account_id: None, access_key: None };
        let AdminAnswer::Account(created) =
            run(dir.path(), &Default::default(), create, Default::default()).await.unwrap()
        else {
            panic!("expected an account")
        };
        assert!(backend.principal(&created.access_key_id).unwrap().is_some());
        let AdminAnswer::Accounts(list) =
            run(dir.path(), &Default::default(), AdminRequest::ListAccounts, Default::default()).await.unwrap()
        else {
            panic!("expected accounts")
        };
        assert_eq!(list.len(), 1);
        let dup = AdminRequest::CreateAccount { name: "team".into(), admin: false, account_id: None, access_key: None };
        assert!(matches!(
            run(dir.path(), &Default::default(), dup, Default::default()).await.unwrap(),
            AdminAnswer::Error(_)
        ));
        server.abort();
    }

    #[tokio::test]
    async fn without_a_server_the_cli_opens_the_database_itself() {
        let dir = tempfile::tempdir().unwrap();
        drop(storage::Store::open(&database_path(dir.path())).unwrap());
        let create =
            AdminRequest::CreateAccount { name: "solo".into(), admin: true, account_id: None, access_key: None };
        let AdminAnswer::Account(created) =
            run(dir.path(), &Default::default(), create, Default::default()).await.unwrap()
        else {
            panic!("expected an account")
        };
        assert!(created.admin);
        let store = storage::Store::open(&database_path(dir.path())).unwrap();
        let backend = Backend::new(store, Default::default());
        assert_eq!(backend.list_accounts().unwrap()[0].name, "solo");
    }

    #[tokio::test]
    async fn without_a_server_the_doctor_still_checks_the_configured_ovn() {
        let dir = tempfile::tempdir().unwrap();
        drop(storage::Store::open(&database_path(dir.path())).unwrap());
        let mut host = backend::hosts::HostConfig::new("test:///default");
        host.accelerator = Some(backend::hypervisor::Accelerator::Test);
        let topology = backend::Topology { hosts: vec![host], ..Default::default() };
        let absent = "unix:/nonexistent/ovnnb_db.sock";
        let AdminAnswer::Doctor(report) = run_with(
            dir.path(),
            &Default::default(),
            AdminRequest::Doctor,
            topology,
            Some((absent, Default::default())),
        )
        .await
        .unwrap() else {
            panic!("expected a report")
        };
        let (db, error) = report.ovn.expect("a configured OVN is checked");
        assert_eq!(db, absent);
        assert!(error.is_some(), "a database that is not there does not answer");
        assert_eq!(report.hosts.len(), 1);
    }

    #[tokio::test]
    async fn an_empty_dir_is_not_a_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert!(run(dir.path(), &Default::default(), AdminRequest::ListAccounts, Default::default()).await.is_err());
    }
}
