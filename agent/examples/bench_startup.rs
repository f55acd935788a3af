//! Pod start-up benchmark: create N pods at once through the API server and measure, through a watch,
//! the time from each pod's create request to its Ready condition. Driven by `scripts/bench-startup.sh`.
//!
//!     bench_startup <N> <image> [agent pid]
//!
//! Prints one `latency_ms <ms>` line per pod, then `p50/p90/p99` lines; exits non-zero if a pod is not Ready
//! within the timeout.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;

const TIMEOUT: Duration = Duration::from_secs(180);

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn bench_pod(name: &str, run: &str, image: &str) -> anyhow::Result<Pod> {
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": { "skiff-bench": run } },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{ "name": "app", "image": image, "imagePullPolicy": "IfNotPresent" }]
        }
    });
    Ok(serde_json::from_value(pod)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let n = common::number_arg(&args, 1, "N", 30)?;
    let image = args.get(2).cloned().unwrap_or_else(|| "nginx".to_string());
    let agent_pid = args.get(3).cloned();

    let client = kube::Client::try_default()
        .await
        .context("connecting with $KUBECONFIG")?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let run = format!("{}", std::process::id());
    let selector = format!("skiff-bench={run}");

    let ready_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let watch = {
        let ready_at = ready_at.clone();
        let stream = watcher(pods.clone(), watcher::Config::default().labels(&selector));
        tokio::spawn(async move {
            let mut started_tx = Some(started_tx);
            let mut stream = std::pin::pin!(stream);
            while let Ok(Some(event)) = stream.try_next().await {
                let seen = Instant::now();
                match event {
                    watcher::Event::InitDone => {
                        if let Some(tx) = started_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)
                        if is_ready(&pod) =>
                    {
                        if let Some(name) = pod.metadata.name {
                            ready_at
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .entry(name)
                                .or_insert(seen);
                        }
                    }
                    _ => {}
                }
            }
        })
    };
    started_rx.await.context("the watch did not start")?;

    let mut created_at = BTreeMap::new();
    let creates = (0..n).map(|i| {
        let pods = pods.clone();
        let name = format!("bench-{run}-{i}");
        let pod = bench_pod(&name, &run, &image);
        async move {
            let pod = pod?;
            let t = Instant::now();
            pods.create(&PostParams::default(), &pod)
                .await
                .with_context(|| format!("creating {name}"))?;
            anyhow::Ok((name, t))
        }
    });
    for r in futures::future::join_all(creates).await {
        let (name, t) = r?;
        created_at.insert(name, t);
    }

    let deadline = Instant::now() + TIMEOUT;
    loop {
        let done = ready_at.lock().unwrap_or_else(|e| e.into_inner()).len();
        if done >= n {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("only {done}/{n} pods became Ready within {TIMEOUT:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watch.abort();
    if let Some(pid) = agent_pid {
        // Read while the N pods still run: that is the figure the target is about.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(kib) = status.lines().find_map(|l| l.strip_prefix("VmRSS:")) {
            println!("agent_rss_kib {}", kib.trim().trim_end_matches("kB").trim());
        }
    }

    let ready_at = ready_at.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let lat: Vec<f64> = created_at
        .iter()
        .filter_map(|(name, t)| {
            ready_at
                .get(name)
                .map(|r| r.duration_since(*t).as_secs_f64() * 1000.0)
        })
        .collect();
    let done = lat.len();
    common::print_latencies(lat, "ready", n);

    let dp = DeleteParams::default();
    let deletes = created_at.keys().map(|name| {
        let (pods, dp) = (pods.clone(), dp.clone());
        async move { pods.delete(name, &dp).await.map(|_| ()) }
    });
    for r in futures::future::join_all(deletes).await {
        if let Err(e) = r {
            eprintln!("delete failed: {e}");
        }
    }
    let left = pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .len();
    eprintln!("deleting {left} bench pods (the agent stops them in the background)");
    if done < n {
        bail!("{} pods never became Ready", n - done);
    }
    Ok(())
}
