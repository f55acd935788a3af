//! skiff-apiserver: a lite Kubernetes-compatible API server.
//!
//! It authenticates, authorizes, decodes, defaults, validates and stores the objects skiff serves, and runs
//! the cluster's built-in loops (scheduler, node IPAM) in-process.
//!
//! Kinds: namespaces, pods, nodes, core/v1 and events.k8s.io/v1 events (one storage, converted on read and
//! write), leases, configmaps, secrets, services (cluster IPs from `--service-cluster-ip-range`, see
//! `service_ips`; node ports from `--service-node-port-range`, see `node_ports`), endpoints, serviceaccounts
//! (a `default` one per namespace) and the RBAC kinds. Lists page with `limit`/`continue` over one snapshot
//! (`list`); server-side apply tracks `managedFields` (`apply`).
//!
//! Authorization (`authz`): `system:masters`, the Node authorizer with NodeRestriction, then RBAC.
//!
//! Node join (`bootstrap_tokens`, `csr`, `controllers::csr`): bootstrap tokens as bearer credentials,
//! `/cacerts` for CA pinning, and node client certificates issued through CertificateSigningRequests.
//!
//! Service accounts (`serviceaccount`): ES256 tokens from `serviceaccounts/{name}/token` signed with
//! `<data-dir>/pki/sa.key`, accepted as bearer credentials; ServiceAccount admission mounts them into pods
//! with the `kube-root-ca.crt` ConfigMap (`controllers::root_ca`).

pub mod access_review;
pub mod apply;
pub mod auth;
pub mod authz;
pub mod bootstrap_tokens;
pub mod controllers;
pub mod csr;
pub mod discovery;
pub mod eviction;
pub mod handlers;
pub mod list;
pub mod metrics;
pub mod node_ports;
pub mod patch;
pub mod pki;
pub mod prefix_cache;
pub mod protobuf;
pub mod protobuf_encode;
pub mod proxy;
pub mod reservations;
pub mod resources;
pub mod scale;
pub mod selectors;
pub mod server;
pub mod service_ips;
pub mod serviceaccount;
pub mod status;
pub mod store;
pub mod strict;
pub mod token_cmd;
pub mod watch;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{oneshot, watch as tokio_watch};

use crate::store::Store;

/// Everything `skiff-apiserver serve` is configured with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    /// 0 picks a free port (tests); the admin kubeconfig then names the port actually bound.
    pub secure_port: u16,
    pub advertise_address: IpAddr,
    pub cluster_cidr: ipnet::Ipv4Net,
    pub node_cidr_mask: u8,
    /// Service cluster IPs come from here (`--service-cluster-ip-range`, default 10.96.0.0/12).
    pub service_cidr: ipnet::Ipv4Net,
    /// The cluster DNS address (`--cluster-dns`, default the 10th of the service range): the
    /// `kube-system/kube-dns` Service's, never allocated automatically. `None`: no such Service.
    pub cluster_dns: Option<Ipv4Addr>,
    pub token_auth_file: Option<PathBuf>,
}

/// Settings with a default, kept apart from [`ServeConfig`] so that a new one does not break the struct
/// literals that build a `ServeConfig` in other crates (the agent's tests): [`run`] takes the defaults.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Node ports of NodePort and LoadBalancer Services (`--service-node-port-range`, default 30000-32767).
    pub service_node_port_range: node_ports::PortRange,
    /// Create the default StorageClass `local-path` at start when absent (`--default-storage-class`,
    /// default true).
    pub default_storage_class: bool,
    /// Where the local-path provisioner puts volumes on the nodes (`--local-path-root`, default
    /// `/var/lib/skiff/storage`; must be absolute and agree with the agents' `--storage-dir`).
    pub local_path_root: PathBuf,
    /// Resource metrics scraped from the agents: written by the scraper, read by the `metrics.k8s.io` API
    /// and the HorizontalPodAutoscaler controller.
    pub metrics: Arc<metrics::MetricsStore>,
    /// How often the agents' resource metrics are scraped (`--metric-resolution`, default 15s).
    pub metric_resolution: Duration,
    /// Do not run ServiceLB (`--disable-servicelb`): LoadBalancer Services stay `<pending>`.
    pub disable_servicelb: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            service_node_port_range: Default::default(),
            default_storage_class: true,
            local_path_root: PathBuf::from(controllers::DEFAULT_LOCAL_PATH_ROOT),
            metrics: Arc::default(),
            metric_resolution: metrics::DEFAULT_RESOLUTION,
            disable_servicelb: false,
        }
    }
}

impl ServeConfig {
    /// Refuse settings that contradict each other.
    pub fn validate(&self) -> Result<()> {
        if let Some(ip) = self.cluster_dns {
            service_ips::check_dns_ip(self.service_cidr, ip)
                .map_err(|why| anyhow::anyhow!("--cluster-dns {ip}: {why}"))?;
        }
        Ok(())
    }
}

/// The path of the store file inside the data directory.
pub fn store_path(cfg: &ServeConfig) -> PathBuf {
    cfg.data_dir.join("store.redb")
}

fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// Write `admin.kubeconfig` unless one for the same server URL exists.
pub fn ensure_admin_kubeconfig(pki: &pki::Pki, cfg: &ServeConfig, port: u16) -> Result<PathBuf> {
    let path = cfg.data_dir.join("admin.kubeconfig");
    let server = format!("https://{}:{port}", url_host(cfg.advertise_address));
    if let Ok(existing) = std::fs::read_to_string(&path)
        && existing.contains(&format!("server: \"{server}\""))
    {
        return Ok(path);
    }
    pki.write_kubeconfig(
        &path,
        &server,
        "skiff-admin",
        &["system:masters".to_string()],
    )?;
    Ok(path)
}

/// Serve the API over `store` until `shutdown` turns true. `ready` receives the bound address once the
/// listener is up (and the PKI and admin kubeconfig exist).
pub async fn serve_with_store(
    cfg: &ServeConfig,
    opts: &ServeOptions,
    store: Arc<dyn Store>,
    shutdown: tokio_watch::Receiver<bool>,
    ready: Option<oneshot::Sender<SocketAddr>>,
) -> Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let pki = pki::Pki::load_or_create(&cfg.data_dir)?;
    let (cert, key) =
        pki.serving_cert(&pki::serving_sans(cfg.advertise_address, cfg.service_cidr))?;
    let tls = server::tls_config(&pki.ca_pem, &cert, &key)?;
    let tokens = match &cfg.token_auth_file {
        Some(p) => auth::TokenAuth::load(p)?,
        None => auth::TokenAuth::default(),
    };
    let listener = tokio::net::TcpListener::bind((cfg.bind_address, cfg.secure_port))
        .await
        .with_context(|| format!("binding {}:{}", cfg.bind_address, cfg.secure_port))?;
    let addr = listener.local_addr()?;
    ensure_admin_kubeconfig(&pki, cfg, addr.port())?;
    authz::bootstrap::ensure_defaults(store.as_ref())
        .await
        .context("creating the default RBAC roles and bindings")?;
    resources::priorityclass::ensure_system_classes(store.as_ref())
        .await
        .context("creating the system PriorityClasses")?;
    if opts.default_storage_class {
        resources::storage::bootstrap::ensure_default_class(store.as_ref())
            .await
            .context("creating the default StorageClass")?;
    }
    let (kc_cert, kc_key) = pki.kubelet_client_cert()?;
    let kubelet = proxy::KubeletClient::new(&kc_cert, &kc_key)?;
    let state = Arc::new(server::State {
        kubelet,
        metrics: opts.metrics.clone(),
        requests: Arc::default(),
        authz: authz::Authorizer::new(store.clone()).with_rbac_cache(),
        api: handlers::Api::new(store.clone())
            .with_service_cidr(cfg.service_cidr)
            .with_cluster_dns(cfg.cluster_dns)
            .with_node_port_range(opts.service_node_port_range)
            .with_caches(prefix_cache::Caches::start(&store)),
        openapi: discovery::OpenApi::build(),
        tokens,
        server_address: format!("{}:{}", url_host(cfg.advertise_address), addr.port()),
        ca_pem: pki.ca_pem.clone(),
        sa_key: serviceaccount::SigningKey::load_or_create(
            &pki.dir.join(serviceaccount::KEY_FILE),
        )?,
    });
    // Resource metrics (`metrics.k8s.io`): scrape the agents every `--metric-resolution`.
    tokio::spawn(metrics::scraper::run(
        state.clone(),
        opts.metric_resolution,
        shutdown.clone(),
    ));
    // Node join: expired bootstrap tokens go away; node client CSRs are approved and signed.
    tokio::spawn(bootstrap_tokens::run_cleaner(
        store.clone(),
        Duration::from_secs(10),
        shutdown.clone(),
    ));
    tokio::spawn(controllers::csr::run(
        store.clone(),
        pki.signer()?,
        shutdown.clone(),
    ));
    // Namespace finalization and orphaned terminating pods. The first pass runs before serving so that
    // the namespaces bootstrapped in the store have their `default` ServiceAccount from the first request on.
    {
        let api = handlers::Api::new(store.clone());
        if let Err(e) = api.finalize_pass(false).await {
            tracing::warn!("first finalizer pass: {e}");
        }
        let mut sd = shutdown.clone();
        tokio::spawn(async move {
            let mut pass: u64 = 0;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = sd.changed() => if *sd.borrow() { return; },
                }
                pass = pass.wrapping_add(1);
                if let Err(e) = api.finalize_pass(pass.is_multiple_of(10)).await {
                    tracing::warn!("finalizer pass: {e}");
                }
            }
        });
    }
    tracing::info!("serving on https://{addr}");
    sd_notify_ready();
    if let Some(r) = ready {
        let _ = r.send(addr);
    }
    server::serve(listener, tls, state, shutdown).await
}

/// Open the store, bootstrap, start the controllers and serve until SIGINT/SIGTERM.
pub async fn run(cfg: ServeConfig) -> Result<()> {
    run_with(cfg, ServeOptions::default()).await
}

/// [`run`] with settings other than the defaults.
pub async fn run_with(cfg: ServeConfig, opts: ServeOptions) -> Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let store: Arc<dyn Store> = open_store(&cfg)?;
    run_with_store(cfg, opts, store).await
}

/// [`run_with`] on a store opened by the caller (`--storage etcd`).
pub async fn run_with_store(
    cfg: ServeConfig,
    opts: ServeOptions,
    store: Arc<dyn Store>,
) -> Result<()> {
    cfg.validate()?;
    if !opts.local_path_root.is_absolute() {
        anyhow::bail!(
            "--local-path-root {}: must be an absolute path",
            opts.local_path_root.display()
        );
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let (tx, rx) = tokio_watch::channel(false);
    let (bound_tx, bound_rx) = oneshot::channel();
    start_controllers(&cfg, &opts, store.clone(), rx.clone(), bound_rx).await?;
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("installing SIGTERM handler: {e}");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    serve_with_store(&cfg, &opts, store, rx, Some(bound_tx)).await
}

fn open_store(cfg: &ServeConfig) -> Result<Arc<dyn Store>> {
    let path = store_path(cfg);
    let s = store::redb::RedbStore::open(&path)
        .with_context(|| format!("opening the store {}", path.display()))?;
    Ok(Arc::new(s))
}

/// Bootstrap the system namespaces now; run the controllers once the listener is bound (`bound`), since the
/// `kubernetes` Service names the port actually bound (`--secure-port 0`).
async fn start_controllers(
    cfg: &ServeConfig,
    opts: &ServeOptions,
    store: Arc<dyn Store>,
    shutdown: tokio_watch::Receiver<bool>,
    bound: oneshot::Receiver<SocketAddr>,
) -> Result<()> {
    controllers::bootstrap(store.as_ref())
        .await
        .context("bootstrapping the system namespaces")?;
    let pki = pki::Pki::load_or_create(&cfg.data_dir)?;
    let mut config = controllers::Config {
        cluster_cidr: cfg.cluster_cidr,
        node_cidr_mask: cfg.node_cidr_mask,
        service_cidr: cfg.service_cidr,
        cluster_dns: cfg.cluster_dns,
        advertise_address: cfg.advertise_address,
        secure_port: cfg.secure_port,
        root_ca_pem: pki.ca_pem.clone(),
        local_path_root: opts.local_path_root.clone(),
        metrics: opts.metrics.clone(),
        service_lb: !opts.disable_servicelb,
    };
    tokio::spawn(async move {
        // No address: the server failed before listening and is going away.
        let Ok(addr) = bound.await else {
            return;
        };
        config.secure_port = addr.port();
        if let Err(e) = controllers::run(store, config, shutdown).await {
            tracing::error!("controllers stopped: {e:#}");
        }
    });
    Ok(())
}

/// Tell systemd (`Type=notify`) that the service is ready: `READY=1` as one datagram to `$NOTIFY_SOCKET`
/// (a path, or `@name` for the abstract namespace). Without `$NOTIFY_SOCKET` it does nothing.
fn sd_notify_ready() {
    use std::os::linux::net::SocketAddrExt as _;
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|sock| match path.as_bytes().strip_prefix(b"@") {
        Some(name) => sock.send_to_addr(b"READY=1", &SocketAddr::from_abstract_name(name)?),
        None => sock.send_to(b"READY=1", &path),
    });
    if let Err(e) = sent {
        tracing::warn!("sd_notify READY=1 to {}: {e}", path.to_string_lossy());
    }
}
