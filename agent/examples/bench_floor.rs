//! The runtime floor of `scripts/bench-startup.sh`: N containers of an already pulled image created and
//! started at once through containerd's native API from this one process, with no API server, pod
//! worker, pinned namespaces or CNI. Every container goes through the agent's own runtime calls
//! (container record, snapshot, task with FIFO stdio, start) and runc creates its network, IPC and UTS
//! namespaces itself, as `ctr run` does. Unlike `ctr run`, no client process is started per container,
//! so this is what containerd, the shim and runc cost on their own.
//!
//!     bench_floor <N> <image> [concurrency] [containerd socket] [registries.yaml]
//!
//! `concurrency` (default N: all at once) caps how many containers are being created at a time, first
//! come first served, as the agent's start-up gate does. Prints one `latency_ms <ms>` line per
//! container (from the common start to its task running), then `p50/p90/p99` lines, then removes
//! everything it created.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use oci_spec::runtime::LinuxNamespaceType;
use skiff_agent::containerd::Containerd;
use skiff_agent::images::{ImageService, PullPolicy, RegistryConfig};
use skiff_agent::runtime::cgroups::{self, Resources};
use skiff_agent::runtime::labels::{ContainerKind, ContainerMeta};
use skiff_agent::runtime::spec::{self, Security, SpecInput};
use skiff_agent::runtime::{CreateRequest, Runtime, logs};

/// A containerd namespace and cgroup parent of its own (`FLOOR_NAMESPACE` in scripts/lib.sh): the agent
/// removes containers of its namespace that no pod owns.
const NAMESPACE: &str = "skiff-bench-floor";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n = common::number_arg(&args, 1, "N", 30)?;
    let image = args.get(2).cloned().unwrap_or_else(|| "nginx".to_string());
    let concurrency = common::number_arg(&args, 3, "concurrency", n)?.max(1);
    let socket = PathBuf::from(
        args.get(4)
            .map(String::as_str)
            .unwrap_or("/run/skiff/containerd/containerd.sock"),
    );
    let registries = PathBuf::from(
        args.get(5)
            .map(String::as_str)
            .unwrap_or("/var/lib/skiff/agent/registries.yaml"),
    );

    cgroups::set_parent(NAMESPACE.to_string());
    let cd = Containerd::connect(&socket, NAMESPACE)
        .await
        .with_context(|| format!("connecting to containerd at {}", socket.display()))?;
    let images = ImageService::new(cd.clone(), RegistryConfig::load(&registries)?);
    let pulled = images
        .ensure(&image, PullPolicy::IfNotPresent, &[])
        .await
        .with_context(|| format!("image {image}"))?;
    let config = pulled.config.config().clone();
    let argv: Vec<String> = config
        .as_ref()
        .and_then(|c| c.entrypoint().clone())
        .unwrap_or_default()
        .into_iter()
        .chain(
            config
                .as_ref()
                .and_then(|c| c.cmd().clone())
                .unwrap_or_default(),
        )
        .collect();
    if argv.is_empty() {
        bail!("image {image} has neither an entrypoint nor a cmd");
    }
    let env = config
        .as_ref()
        .and_then(|c| c.env().clone())
        .unwrap_or_default();

    let run = std::process::id();
    let dir = PathBuf::from(format!("/run/skiff/bench-floor-{run}"));
    let runtime = Runtime::new(cd, dir.join("run"));

    let mut requests = Vec::with_capacity(n);
    for i in 0..n {
        let meta = ContainerMeta {
            pod_uid: format!("floor-{run}-{i}"),
            pod_namespace: "default".into(),
            pod_name: format!("floor-{run}-{i}"),
            container_name: "app".into(),
            attempt: 0,
            kind: ContainerKind::App,
        };
        let input = SpecInput {
            args: argv.clone(),
            env: env.clone(),
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            hostname: meta.pod_name.clone(),
            // Placeholders: the paths are dropped below so that runc creates the namespaces.
            net_ns: "/".into(),
            ipc_ns: "/".into(),
            uts_ns: "/".into(),
            host_network: false,
            host_pid: false,
            host_ipc: false,
            mounts: vec![],
            cgroups_path: cgroups::cgroups_path(&meta.pod_uid, &meta.container_id()),
            cgroup_v2: runtime.cgroup_v2,
            resources: Resources {
                cpu_shares: cgroups::MIN_SHARES,
                cpu_quota: None,
                cpu_period: cgroups::CFS_PERIOD_US,
                memory_limit: None,
            },
            security: Security::default(),
            terminal: false,
        };
        let mut spec = spec::build(&input).map_err(anyhow::Error::msg)?;
        if let Some(linux) = spec.linux_mut()
            && let Some(namespaces) = linux.namespaces_mut()
        {
            for ns in namespaces.iter_mut() {
                if matches!(
                    ns.typ(),
                    LinuxNamespaceType::Network | LinuxNamespaceType::Ipc | LinuxNamespaceType::Uts
                ) {
                    ns.set_path(None);
                }
            }
        }
        let log_path = logs::log_path(
            &dir.join("logs"),
            "default",
            &meta.pod_name,
            &meta.pod_uid,
            "app",
            0,
        );
        requests.push(CreateRequest {
            meta,
            image_ref: pulled.reference.clone(),
            chain_id: pulled.chain_id.clone(),
            spec,
            log_path,
            stdio: Default::default(),
        });
    }

    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let t0 = Instant::now();
    let starts = requests.into_iter().map(|req| {
        let (runtime, gate) = (runtime.clone(), gate.clone());
        tokio::spawn(async move {
            let id = req.meta.container_id();
            let uid = req.meta.pod_uid.clone();
            // The semaphore is never closed, so the permit is always there.
            let _permit = gate.acquire().await;
            let res = runtime.create_and_start(req).await;
            (id, uid, res.map(|_| t0.elapsed()))
        })
    });
    let mut lat = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut failed = 0;
    for joined in futures::future::join_all(starts).await {
        let (id, uid, res) = joined.context("start task panicked")?;
        match res {
            Ok(d) => lat.push(d.as_secs_f64() * 1000.0),
            Err(e) => {
                eprintln!("{id}: {e}");
                failed += 1;
            }
        }
        created.push((id, uid));
    }
    common::print_latencies(lat, "started", n);

    let removals = created.iter().map(|(id, _)| runtime.remove(id));
    for errors in futures::future::join_all(removals).await {
        for e in errors {
            eprintln!("cleanup: {e}");
        }
    }
    for (_, uid) in &created {
        for e in cgroups::remove_pod_cgroups(uid) {
            eprintln!("cleanup: {e}");
        }
    }
    for controller in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        // Empty by now; a controller mounted twice (cpu -> cpu,cpuacct) is simply gone the second time.
        let _ = std::fs::remove_dir(controller.path().join(NAMESPACE));
    }
    let _ = std::fs::remove_dir(PathBuf::from("/run/containerd/runc").join(NAMESPACE));
    // Give the log copiers a moment to see their FIFOs close before the directory goes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("cleanup: {}: {e}", dir.display());
    }
    if failed > 0 {
        bail!("{failed} of {n} containers did not start");
    }
    Ok(())
}
