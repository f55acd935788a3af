//! skiff-agent: a Kubernetes node agent that replaces the kubelet.
//!
//! It registers its Node, watches the pods bound to it, and runs them with containerd's native API:
//! images are pulled into containerd's content store, the pod's namespaces are pinned on disk, networking
//! comes from a CNI chain, and status flows back to the API server.

pub mod bootstrap;
pub mod cni;
pub mod config;
pub mod config_file;
pub mod containerd;
pub mod dns;
pub mod images;
pub mod kube_tls;
pub mod memory;
pub mod netpol;
pub mod node;
pub mod pods;
pub mod probes;
pub mod proxy;
pub mod routes;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod volumes;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

pub use config::Config;

async fn start(config: Config) -> anyhow::Result<()> {
    let image_gc = node::image_gc::Policy::new(
        config.image_gc_high_threshold,
        config.image_gc_low_threshold,
        config.image_minimum_gc_age,
    )
    .map_err(anyhow::Error::msg)?;
    let eviction_soft = config.eviction_soft_thresholds()?;
    runtime::cgroups::set_parent(config.cgroup_parent.clone());
    if let (Some(server), Some(token)) = (&config.server, &config.token)
        && !tokio::fs::try_exists(&config.kubeconfig)
            .await
            .unwrap_or(false)
    {
        bootstrap::join(server, token, &config.node_name, &config.kubeconfig)
            .await
            .with_context(|| format!("failed to join {server}"))?;
    }
    let (client, cert) = kube_tls::client(&config.kubeconfig).await?;
    if let Some(cert) = cert {
        let path = config.kubeconfig.clone();
        tokio::spawn(bootstrap::renew_loop(
            config.kubeconfig.clone(),
            config.node_name.clone(),
            move || match cert.reload(&path) {
                Ok(()) => tracing::info!("new API connections use the renewed certificate"),
                Err(e) => tracing::warn!("loading the renewed certificate: {e:#}"),
            },
        ));
    }
    // Like the kubelet, wait for the container runtime (it may be starting, or restarting).
    let mut delay = std::time::Duration::from_millis(250);
    let (cd, runtime, version) = loop {
        let attempt = async {
            let cd = containerd::Containerd::connect(
                &config.containerd_socket,
                &config.containerd_namespace,
            )
            .await
            .context("failed to connect to containerd")?;
            let runtime = runtime::Runtime::new(cd.clone(), config.run_dir.clone());
            let version = runtime
                .version()
                .await
                .context("containerd does not answer")?;
            anyhow::Ok((cd, runtime, version))
        };
        match attempt.await {
            Ok(x) => break x,
            Err(e) => {
                tracing::warn!("{e:#}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    };
    let reg_path = config.registry_config.clone();
    let registries = if tokio::fs::try_exists(&reg_path).await.unwrap_or(false) {
        tokio::task::spawn_blocking(move || images::RegistryConfig::load(&reg_path))
            .await?
            .with_context(|| {
                format!(
                    "failed to load registry config {}",
                    config.registry_config.display()
                )
            })?
    } else {
        tracing::warn!(path = %reg_path.display(), "no registry config; pulling from registries directly");
        images::RegistryConfig::default()
    };
    let images = images::ImageService::new(cd.clone(), registries);
    let cni = Arc::new(cni::CniRuntime::new(
        config.cni_conf_dir.clone(),
        config.cni_bin_dir.clone(),
        config.cni_cache_dir.clone(),
    ));
    runtime::logs::set_policy(runtime::logs::LogPolicy {
        max_size: config.container_log_max_size,
        max_files: config.container_log_max_files,
        link_dir: Some(config.container_log_dir.clone()),
    });
    for dir in [&config.root_dir, &config.run_dir, &config.pod_log_dir] {
        tokio::fs::create_dir_all(dir)
            .await
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }

    let facts = node::info::gather(config.node_ip, &config.root_dir, &version).await?;
    let node_ip = facts.node_ip;
    let kubelet_port = if config.kubelet_port == 0 {
        0
    } else {
        let api = Arc::new(server::ApiContext {
            runtime: runtime.clone(),
            pod_log_dir: config.pod_log_dir.clone(),
            run_dir: config.run_dir.clone(),
        });
        server::start(
            config.kubelet_port,
            &config.kubeconfig,
            &config.node_name,
            node_ip,
            api,
        )
        .await
        .context("failed to start the kubelet API")?
        .port()
    };
    let agent = Arc::new(node::NodeAgent {
        client: client.clone(),
        name: config.node_name.clone(),
        facts,
        runtime: runtime.clone(),
        cni: cni.clone(),
        kubelet_port,
        eviction: node::pressure::Eviction {
            hard: config.eviction_hard.0.clone(),
            soft: eviction_soft,
            max_pod_grace_period: i64::from(config.eviction_max_pod_grace_period),
            transition_period: config.eviction_pressure_transition_period,
            nodefs: config.root_dir.clone(),
            imagefs: config.containerd_root.clone(),
            min_reclaim: node::pressure::MinReclaim::new(config.eviction_minimum_reclaim.clone()),
        },
        system_reserved: config.system_reserved,
        kube_reserved: config.kube_reserved,
        conditions: Arc::default(),
    });
    let mut delay = std::time::Duration::from_millis(500);
    loop {
        let health = agent.health().await;
        match agent.register(&health).await {
            Ok(()) => {
                sd_notify_ready();
                break;
            }
            Err(e) => tracing::warn!(error = %e, "node registration failed; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(10));
    }
    tokio::spawn(node::lease::run(client.clone(), config.node_name.clone()));
    tokio::spawn(routes::run_mode(
        client.clone(),
        config.node_name.clone(),
        config.pod_network_mode,
    ));
    let pod_cidr = agent.wait_pod_cidr().await?;
    tracing::info!(%pod_cidr, "node has a pod CIDR");
    let (c, cluster) = (cni.clone(), config.cluster_cidr.clone());
    let pc = pod_cidr.clone();
    tokio::task::spawn_blocking(move || c.ensure_default_conflist(&pc, &cluster))
        .await?
        .context("failed to write the CNI configuration")?;
    let services = proxy::Services::start(
        client.clone(),
        config.proxy_mode,
        config.node_name.clone(),
        proxy::node_ips(&agent.facts.addresses(&config.node_name)),
        pod_cidr.parse().ok(),
        config.cluster_dns.0,
    );
    if config.network_policy {
        tokio::spawn(netpol::run(client.clone(), config.node_name.clone()));
    }
    let dns = config.cluster_dns.0.map(|ip| dns::Settings {
        ip,
        domain: config.cluster_domain.clone(),
        resolv_conf: config.resolv_conf.clone(),
        port: 53,
    });
    if let Some(settings) = dns.clone() {
        let services = services.clone();
        tokio::spawn(async move {
            // Answer only once the Services and Endpoints are listed (a name missing meanwhile would be
            // cached as NXDOMAIN), as CoreDNS waits for its informers.
            services.synced(std::time::Duration::from_secs(5)).await;
            // The agent runs without cluster DNS rather than not at all; pods still start (lookups fail).
            if let Err(e) = dns::start(settings, services).await {
                tracing::error!(error = %e, "cluster DNS cannot be served on this node");
            }
        });
    }
    tokio::spawn(agent.clone().status_loop());
    tokio::spawn(
        cni.clone()
            .gc_loop(config.run_dir.join("pods"), cni::GC_PERIOD),
    );

    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    runtime::events::spawn(runtime.clone(), ev_tx);
    // Volume paths are compared with it (local-path's mode, the clean-up): make it absolute once.
    let storage_dir = std::path::absolute(&config.storage_dir)
        .with_context(|| format!("bad --storage-dir {}", config.storage_dir.display()))?;
    let ctx = Arc::new(pods::Context {
        recorder: pods::recorder::Recorder::spawn(client.clone(), config.node_name.clone()),
        client,
        runtime,
        images,
        cni,
        node_name: config.node_name.clone(),
        node_ip,
        root_dir: config.root_dir.clone(),
        run_dir: config.run_dir.clone(),
        pod_log_dir: config.pod_log_dir.clone(),
        startup_gate: pods::gate::StartupGate::new(usize::from(config.startup_concurrency)),
        arrivals: std::sync::atomic::AtomicU64::new(0),
        node_conditions: agent.conditions.clone(),
        services,
        tokens: Default::default(),
        storage_dir: storage_dir.clone(),
        claims_in_use: Default::default(),
        dns: pods::files::Dns {
            cluster: dns.map(|d| (d.ip, d.domain)),
            resolv_conf: config.resolv_conf.clone(),
        },
    });
    let image_gc = Arc::new(node::image_gc::ImageGc::new(
        ctx.runtime.clone(),
        ctx.images.clone(),
        ctx.recorder.clone(),
        [config.containerd_root.clone(), config.root_dir.clone()],
        image_gc,
    ));
    tokio::spawn(image_gc.clone().run(config.image_gc_period));
    tokio::spawn(volumes::storage_gc::run(
        ctx.client.clone(),
        storage_dir,
        ctx.claims_in_use.clone(),
        volumes::storage_gc::PERIOD,
    ));
    let (evict_tx, evict_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(pods::eviction::run(
        ctx.clone(),
        agent.eviction.clone(),
        config.eviction_monitoring_period,
        evict_tx,
        image_gc,
    ));
    pods::run(ctx, ev_rx, evict_rx).await;
    anyhow::bail!("the pod watch ended")
}

/// Run the agent until SIGTERM/SIGINT. Pods keep running when the agent stops; the next start adopts them.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if config.check_join {
        let (server, token) = (
            config.server.as_deref().unwrap_or_default(),
            config.token.as_deref().unwrap_or_default(),
        );
        bootstrap::check_join(server, token)
            .await
            .with_context(|| format!("cannot join {server}"))?;
        println!("{server} presents the pinned CA and accepts the token");
        return Ok(());
    }
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    tokio::select! {
        r = start(config) => r,
        _ = term.recv() => {
            tracing::info!("SIGTERM: stopping, pods keep running");
            Ok(())
        }
        _ = int.recv() => {
            tracing::info!("SIGINT: stopping, pods keep running");
            Ok(())
        }
    }
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
