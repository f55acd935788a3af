//! Node-pressure eviction, as the kubelet's eviction manager does it: every `--eviction-monitoring-period`
//! the signals are measured; while a hard threshold is crossed, or a soft one has been crossed for its grace
//! period, one pod at a time is ranked first and evicted (Failed, reason `Evicted`, condition
//! `DisruptionTarget`; containers killed at once for a hard threshold, stopped with
//! `--eviction-max-pod-grace-period` or the pod's grace period for a soft one), and the next only once it
//! is down. Before a pod is evicted, node-level resources are reclaimed (`node::reclaim`: for disk, dead
//! containers then unused images) and the signals measured again; a threshold once met stays met until its
//! `--eviction-minimum-reclaim` is reclaimed too. Admission: while the node reports pressure, new
//! pods are refused (only BestEffort ones when memory pressure is the only condition). Critical pods
//! (priority at least `system-cluster-critical`'s 2000000000, mirror pods) are neither evicted nor refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tokio::sync::mpsc;

use super::Context;
use super::status::PodFailure;
use crate::node::container_gc::ContainerGc;
use crate::node::image_gc::ImageGc;
use crate::node::pressure::min_reclaim::{self, Held};
use crate::node::pressure::soft::{self, FirstObserved};
use crate::node::pressure::{self, Crossed, Eviction, Pressure, Signal};
use crate::node::reclaim::{self, NodeReclaim};
use crate::runtime::cgroups;

/// The kubelet's `SystemCriticalPriority`.
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;
/// How long the manager waits for an evicted pod to be down before it picks the next (kubelet's
/// `podCleanupTimeout`).
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

pub fn is_critical(pod: &Pod) -> bool {
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    mirror
        || pod
            .spec
            .as_ref()
            .and_then(|s| s.priority)
            .is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY)
}

fn tolerates_memory_pressure(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .is_some_and(|ts| {
            ts.iter().any(|t| {
                let key_ok = match t.key.as_deref() {
                    None | Some("") => t.operator.as_deref() == Some("Exists"),
                    Some(k) => k == "node.kubernetes.io/memory-pressure",
                };
                key_ok && matches!(t.effect.as_deref(), None | Some("") | Some("NoSchedule"))
            })
        })
}

/// The kubelet's eviction admission: under memory pressure alone only BestEffort pods are refused
/// (unless they tolerate the memory-pressure taint); under any other pressure every non-critical pod.
pub fn admit(pod: &Pod, conditions: Pressure) -> Result<(), PodFailure> {
    let names = conditions.names();
    if names.is_empty() || is_critical(pod) {
        return Ok(());
    }
    if names == ["MemoryPressure"]
        && (cgroups::qos_class(pod) != "BestEffort" || tolerates_memory_pressure(pod))
    {
        return Ok(());
    }
    Err(PodFailure {
        reason: "Evicted".into(),
        message: format!("The node had condition: [{}]. ", names.join(", ")),
        disruption: false,
        grace: None,
    })
}

/// What the ranking needs of one pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Candidate {
    pub uid: String,
    pub name: String,
    pub priority: i32,
    pub memory_request: u64,
    /// Working set (usage less inactive file pages) of the pod cgroup.
    pub memory: u64,
    pub storage_request: u64,
    /// Bytes of the pod's logs and emptyDir volumes.
    pub storage: u64,
    pub pids: u64,
    /// `spec.terminationGracePeriodSeconds` (a soft eviction's grace period when no maximum is set).
    pub grace: Option<i64>,
}

/// Order the pods to evict for a signal, first first (k/k `pkg/kubelet/eviction/helpers.go`): for memory
/// and disk, pods using more than they requested, then lower priority, then more usage above the
/// request; for pids, lower priority, then more processes.
pub fn rank(signal: Signal, mut pods: Vec<Candidate>) -> Vec<Candidate> {
    let above = |usage: u64, request: u64| usage.saturating_sub(request);
    match signal {
        Signal::MemoryAvailable => pods.sort_by(|a, b| {
            (b.memory > b.memory_request)
                .cmp(&(a.memory > a.memory_request))
                .then(a.priority.cmp(&b.priority))
                .then(above(b.memory, b.memory_request).cmp(&above(a.memory, a.memory_request)))
        }),
        Signal::PidAvailable => {
            pods.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.pids.cmp(&a.pids)))
        }
        _ => pods.sort_by(|a, b| {
            (b.storage > b.storage_request)
                .cmp(&(a.storage > a.storage_request))
                .then(a.priority.cmp(&b.priority))
                .then(above(b.storage, b.storage_request).cmp(&above(a.storage, a.storage_request)))
        }),
    }
    pods
}

/// The kubelet's eviction message.
pub fn message(c: &Crossed) -> String {
    let q = |v: u64| {
        if c.signal.is_bytes() {
            pressure::quantity_string(v)
        } else {
            v.to_string()
        }
    };
    format!(
        "The node was low on resource: {}. Threshold quantity: {}, available: {}. ",
        c.signal.resource(),
        q(c.threshold),
        q(c.available)
    )
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn stat_field(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Working set and process count of the pod cgroup (0 when it cannot be read).
fn cgroup_usage(uid: &str) -> (u64, u64) {
    let rel = format!("{}/pod{uid}", cgroups::parent());
    let root = Path::new("/sys/fs/cgroup");
    let (usage, inactive, pids) = if cgroups::is_v2() {
        let dir = root.join(&rel);
        (
            read_number(&dir.join("memory.current")),
            stat_field(&dir.join("memory.stat"), "inactive_file"),
            read_number(&dir.join("pids.current")),
        )
    } else {
        let mem = root.join("memory").join(&rel);
        (
            read_number(&mem.join("memory.usage_in_bytes")),
            stat_field(&mem.join("memory.stat"), "total_inactive_file"),
            read_number(&root.join("pids").join(&rel).join("pids.current")),
        )
    };
    let working_set = usage.unwrap_or(0).saturating_sub(inactive.unwrap_or(0));
    (working_set, pids.unwrap_or(0))
}

/// Bytes of the regular files below `dir` (symlinks not followed). Iterative: a pod decides how deep its
/// emptyDir nests, and recursion that deep would overflow the stack.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => pending.push(e.path()),
                Ok(t) if t.is_file() => {
                    total = total.saturating_add(e.metadata().map(|m| m.len()).unwrap_or(0))
                }
                _ => {}
            }
        }
    }
    total
}

/// Measure the pods (blocking: cgroup files and directory walks).
fn candidates(pods: &[Pod], pod_log_dir: &Path, root_dir: &Path) -> Vec<Candidate> {
    pods.iter()
        .filter_map(|p| {
            let uid = p.metadata.uid.clone()?;
            let ns = p.metadata.namespace.as_deref().unwrap_or("default");
            let name = p.metadata.name.clone().unwrap_or_default();
            let (memory, pids) = cgroup_usage(&uid);
            // A quantity that does not parse fails the pod's containers; it requests nothing here.
            let (memory_request, storage_request) =
                cgroups::pod_requested_bytes(p).unwrap_or_default();
            let logs: PathBuf = pod_log_dir.join(format!("{ns}_{name}_{uid}"));
            let volumes = crate::volumes::pod_dir(root_dir, &uid)
                .join("volumes")
                .join("kubernetes.io~empty-dir");
            Some(Candidate {
                priority: p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
                memory_request,
                memory,
                storage_request,
                storage: dir_bytes(&logs) + dir_bytes(&volumes),
                pids,
                grace: p
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds),
                uid,
                name: format!("{ns}/{name}"),
            })
        })
        .collect()
}

fn evictable(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    p.metadata.deletion_timestamp.is_none()
        && !matches!(phase, Some("Succeeded") | Some("Failed"))
        && !is_critical(p)
}

/// The eviction manager (runs for the agent's lifetime; nothing to do without thresholds).
pub async fn run(
    ctx: Arc<Context>,
    eviction: Eviction,
    period: Duration,
    evict: mpsc::UnboundedSender<(String, PodFailure)>,
    images: Arc<ImageGc>,
) {
    if eviction.hard.is_empty() && eviction.soft.is_empty() {
        return;
    }
    let mut first_observed = FirstObserved::default();
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let on_node = ListParams::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let node_reclaim = NodeReclaim {
        containers: ContainerGc::new(ctx.runtime.clone(), ctx.pod_log_dir.clone()),
        images,
        pods: api.clone(),
        on_node: on_node.clone(),
    };
    let fs = eviction.clone();
    let dedicated_imagefs = tokio::task::spawn_blocking(move || fs.dedicated_imagefs())
        .await
        .unwrap_or(false);
    let min = eviction.min_reclaim.amounts.clone();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The resource reclaimed last round: the node's EvictionThresholdMet event is recorded when it changes
    // (the kubelet records one each round and its event correlator folds them into one, counted).
    let mut reclaiming: Option<&'static str> = None;
    loop {
        tick.tick().await;
        let observed = eviction.observe_async().await;
        // Thresholds met last round stay met until their minimum reclaim is reclaimed.
        let held = eviction.min_reclaim.held();
        let hard = min_reclaim::met(&eviction.hard, &held.hard, &min, &observed);
        let soft_met =
            first_observed.met_holding(&eviction.soft, &held.soft, &min, &observed, Instant::now());
        eviction.min_reclaim.set_held(Held {
            hard: hard.iter().map(|c| c.signal).collect(),
            soft: soft_met.iter().map(|c| c.signal).collect(),
        });
        let Some((c, is_soft)) = soft::pick(&hard, &soft_met) else {
            reclaiming = None;
            continue;
        };
        let resource = c.signal.resource();
        tracing::info!(
            resource,
            signal = c.signal.name(),
            "eviction manager: attempting to reclaim"
        );
        if reclaiming != Some(resource) {
            ctx.recorder.node_warning(
                "EvictionThresholdMet",
                format!("Attempting to reclaim {resource}"),
            );
            reclaiming = Some(resource);
        }
        // Node-level resources first (disk: dead containers, then unused images); no pod is evicted when
        // that brought every threshold back above itself plus its minimum reclaim.
        let fns = reclaim::reclaim_fns(c.signal, dedicated_imagefs);
        if node_reclaim.run(fns, resource).await {
            let after = eviction.observe_async().await;
            if min_reclaim::met_enforcing(&eviction.all_thresholds(), &min, &after).is_empty() {
                tracing::info!(
                    resource,
                    "eviction manager: able to reduce resource pressure without evicting pods."
                );
                continue;
            }
        }
        tracing::info!(resource, "eviction manager: must evict pod(s) to reclaim");
        let pods: Vec<Pod> = match api.list(&on_node).await {
            Ok(l) => l.items.into_iter().filter(evictable).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "eviction: cannot list this node's pods");
                continue;
            }
        };
        let (logs, root) = (ctx.pod_log_dir.clone(), ctx.root_dir.clone());
        let measured =
            match tokio::task::spawn_blocking(move || candidates(&pods, &logs, &root)).await {
                Ok(m) => m,
                Err(_) => continue,
            };
        let Some(victim) = rank(c.signal, measured).into_iter().next() else {
            tracing::debug!(signal = ?c.signal, "threshold crossed, no pod to evict");
            continue;
        };
        let message = message(&c);
        // A hard threshold kills at once; a soft one stops the pod with the grace period the kubelet's
        // `MaxPodGracePeriodSeconds` override gives.
        let grace = if is_soft {
            soft::eviction_grace(eviction.max_pod_grace_period, victim.grace)
        } else {
            Duration::ZERO
        };
        tracing::info!(pod = %victim.name, %message, soft = is_soft, ?grace, "evicting a pod");
        let failure = PodFailure {
            reason: "Evicted".into(),
            message,
            disruption: true,
            grace: Some(grace),
        };
        if evict.send((victim.uid.clone(), failure)).is_err() {
            return;
        }
        // One pod at a time: wait until this one is down before measuring again (polled each second,
        // as the kubelet's `podCleanupPollFreq`).
        let deadline = Instant::now() + CLEANUP_TIMEOUT;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let down = match api.list(&on_node).await {
                Ok(l) => !l
                    .items
                    .iter()
                    .any(|p| p.metadata.uid.as_deref() == Some(&victim.uid) && evictable(p)),
                Err(_) => false,
            };
            if down {
                break;
            }
        }
    }
}

#[cfg(test)]
#[path = "eviction_tests.rs"]
mod tests;
