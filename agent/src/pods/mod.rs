//! Pods bound to this node: one watcher over `spec.nodeName=<node>`, one worker task per pod UID.
//! Workers compute what should change and apply it (kubelet's SyncPod shape), so every step is
//! idempotent and an agent restart resumes where the last one stopped.

pub mod backoff;
pub mod discover;
pub mod env;
pub mod eviction;
pub mod exits;
pub mod files;
pub mod gate;
pub mod hooks;
pub mod recorder;
pub mod report;
pub mod start;
pub mod state;
pub mod status;
pub mod teardown;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::cni::CniRuntime;
use crate::images::ImageService;
use crate::runtime::Runtime;
use crate::runtime::events::RuntimeEvent;
use recorder::Recorder;
use worker::{Msg, Worker};

/// Everything the workers share: one kube client, one containerd channel.
pub struct Context {
    pub client: kube::Client,
    pub runtime: Runtime,
    pub images: ImageService,
    pub cni: Arc<CniRuntime>,
    pub recorder: Recorder,
    pub node_name: String,
    pub node_ip: IpAddr,
    pub root_dir: PathBuf,
    pub run_dir: PathBuf,
    pub pod_log_dir: PathBuf,
    /// Bounds concurrent sandbox setups and container starts, admitting pods in arrival order.
    pub startup_gate: gate::StartupGate,
    /// Arrival numbers for workers (the gate's order).
    pub arrivals: std::sync::atomic::AtomicU64,
    /// The node's pressure conditions as last reported (pod admission).
    pub node_conditions: Arc<std::sync::Mutex<crate::node::pressure::Pressure>>,
    /// Services and Endpoints (service variables; the service proxy).
    pub services: Arc<crate::proxy::Services>,
    /// Service-account tokens of projected volumes.
    pub tokens: crate::volumes::tokens::Tokens,
    /// Where local-path PersistentVolumes live (`--storage-dir`).
    pub storage_dir: PathBuf,
    /// The claims this node's pods use, for the storage clean-up; kept by the pod manager.
    pub claims_in_use: crate::volumes::storage_gc::InUse,
    /// What pods' resolv.conf is made of.
    pub dns: files::Dns,
}

pub const RELIST_PERIOD: Duration = Duration::from_secs(10);
/// How often every container is listed to find those of pods without a worker. Listing containers returns
/// each one's whole OCI spec (≈ 4.5 KB a container), so it is not done at every relist: a relist whose task
/// list shows a task of no known pod triggers it at once, and this period catches containers without a task.
const ORPHAN_SCAN_PERIOD: Duration = Duration::from_secs(60);
/// How many torn-down pod UIDs are remembered (to ignore late watch events for them).
const FINISHED_MEMORY: usize = 10_000;

struct Manager {
    ctx: Arc<Context>,
    workers: HashMap<String, mpsc::UnboundedSender<Msg>>,
    finished: HashSet<String>,
    done_tx: mpsc::UnboundedSender<String>,
}

impl Manager {
    fn spawn(&mut self, uid: String, pod: Option<Arc<Pod>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let name = pod
            .as_ref()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.metadata.namespace.as_deref().unwrap_or(""),
                    p.metadata.name.as_deref().unwrap_or("")
                )
            })
            .unwrap_or_else(|| "-".into());
        match &pod {
            Some(p) => self.ctx.claims_in_use.pod(&uid, p),
            None => self.ctx.claims_in_use.unknown(&uid),
        }
        let span = tracing::info_span!("pod", pod.uid = %uid, pod.name = %name);
        let mut w = Worker::new(self.ctx.clone(), uid.clone(), pod, rx);
        w.probe_tx = Some(tx.downgrade());
        let done = self.done_tx.clone();
        tokio::spawn(w.run(done).instrument(span));
        self.workers.insert(uid, tx);
    }

    fn dispatch(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let pod = Arc::new(pod);
        if let Some(tx) = self.workers.get(&uid) {
            self.ctx.claims_in_use.pod(&uid, &pod);
            let _ = tx.send(Msg::Pod(pod));
            return;
        }
        if self.finished.contains(&uid) && pod.metadata.deletion_timestamp.is_none() {
            return;
        }
        self.spawn(uid, Some(pod));
    }

    fn gone(&mut self, uid: &str) {
        if let Some(tx) = self.workers.get(uid) {
            let _ = tx.send(Msg::Gone);
        }
    }

    /// The worker owning a container id.
    fn owner(&self, container_id: &str) -> Option<&mpsc::UnboundedSender<Msg>> {
        self.workers
            .iter()
            .find(|(uid, _)| owns(uid, container_id))
            .map(|(_, tx)| tx)
    }

    fn runtime_event(&mut self, ev: RuntimeEvent) {
        match ev {
            RuntimeEvent::Exit {
                container_id,
                exit_status,
                exited_at,
            } => {
                if let Some(tx) = self.owner(&container_id) {
                    let _ = tx.send(Msg::Exit {
                        id: container_id,
                        code: exit_status,
                        at: exited_at,
                    });
                }
            }
            RuntimeEvent::Oom { container_id } => {
                if let Some(tx) = self.owner(&container_id) {
                    let _ = tx.send(Msg::Oom { id: container_id });
                }
            }
            // Events may have been missed: each worker asks containerd about its tasks.
            RuntimeEvent::Resync => self.resync_all(None),
        }
    }

    fn resync_all(&self, listed: Option<exits::Relist>) {
        for tx in self.workers.values() {
            let _ = tx.send(Msg::Resync(listed.clone()));
        }
    }

    /// Every task containerd has, for the workers' relist check; `None` (they ask one by one) when the
    /// list fails.
    async fn list_tasks(&self) -> Option<exits::Relist> {
        match self.ctx.runtime.list_tasks().await {
            Ok(tasks) => Some(exits::Relist::new(tasks)),
            Err(e) => {
                tracing::debug!(error = %e, "cannot list tasks; workers ask per container");
                None
            }
        }
    }

    /// Whether a container id (`<pod-uid>-<name>-<attempt>`) belongs to a pod with a worker.
    fn has_worker_for(&self, container_id: &str) -> bool {
        // UIDs are UUIDs (36 characters) in practice; anything else falls back to the full comparison.
        let by_uuid = container_id
            .get(..36)
            .is_some_and(|uid| self.workers.contains_key(uid) && owns(uid, container_id));
        by_uuid || self.workers.keys().any(|uid| owns(uid, container_id))
    }

    /// Containers of pods that have no worker (the pod left the API while the agent was away, or a
    /// teardown was interrupted): start a worker that tears them down.
    async fn collect_orphans(&mut self) {
        let records = match self.ctx.runtime.list_containers(None).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list containers");
                return;
            }
        };
        let uids: HashSet<String> = records.into_iter().map(|r| r.meta.pod_uid).collect();
        for uid in uids {
            if !self.workers.contains_key(&uid) {
                tracing::info!(pod.uid = %uid, "tearing down containers of a pod that is not in the API");
                self.spawn(uid, None);
            }
        }
    }
}

/// Whether a container id (`<pod-uid>-<name>-<attempt>`) belongs to the pod with this UID.
pub fn owns(pod_uid: &str, container_id: &str) -> bool {
    container_id.len() > pod_uid.len() + 1
        && container_id.starts_with(pod_uid)
        && container_id.as_bytes()[pod_uid.len()] == b'-'
}

/// Watch this node's pods and drive their workers until the watch stream ends.
pub async fn run(
    ctx: Arc<Context>,
    mut runtime_events: mpsc::UnboundedReceiver<RuntimeEvent>,
    mut evictions: mpsc::UnboundedReceiver<(String, status::PodFailure)>,
) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut m = Manager {
        ctx,
        workers: HashMap::new(),
        finished: HashSet::new(),
        done_tx,
    };
    let mut listing: Option<HashSet<String>> = None;
    let mut synced = false;
    let mut relist = tokio::time::interval(RELIST_PERIOD);
    let mut last_orphan_scan = tokio::time::Instant::now();
    relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Pods finished since the last relist: their memory goes back to the kernel at the next one.
    let mut finished_since_trim = false;
    loop {
        tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(Event::Apply(pod))) => m.dispatch(pod),
                Some(Ok(Event::InitApply(pod))) => {
                    if let (Some(l), Some(uid)) = (listing.as_mut(), pod.metadata.uid.as_ref()) {
                        l.insert(uid.clone());
                    }
                    m.dispatch(pod);
                }
                Some(Ok(Event::Delete(pod))) => {
                    if let Some(uid) = pod.metadata.uid.as_deref() {
                        m.gone(uid);
                    }
                }
                Some(Ok(Event::Init)) => listing = Some(HashSet::new()),
                Some(Ok(Event::InitDone)) => {
                    let seen = listing.take().unwrap_or_default();
                    let stale: Vec<String> = m.workers.keys().filter(|u| !seen.contains(*u)).cloned().collect();
                    for uid in stale {
                        m.gone(&uid);
                    }
                    if !synced {
                        synced = true;
                        m.collect_orphans().await;
                        m.ctx.claims_in_use.mark_synced();
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "pod watch failed; retrying"),
                None => break,
            },
            Some(ev) = runtime_events.recv() => m.runtime_event(ev),
            Some((uid, failure)) = evictions.recv() => {
                if let Some(tx) = m.workers.get(&uid) {
                    let _ = tx.send(Msg::Evict(failure));
                }
            }
            Some(uid) = done_rx.recv() => {
                m.workers.remove(&uid);
                m.ctx.claims_in_use.remove(&uid);
                if m.finished.len() >= FINISHED_MEMORY {
                    m.finished.clear();
                }
                m.finished.insert(uid);
                finished_since_trim = true;
            }
            _ = relist.tick() => {
                if std::mem::take(&mut finished_since_trim) {
                    tokio::task::spawn_blocking(crate::memory::trim);
                }
                let listed = m.list_tasks().await;
                let unowned_task = listed
                    .as_ref()
                    .is_none_or(|l| l.has_unowned(|id| m.has_worker_for(id)));
                m.resync_all(listed);
                if synced && (unowned_task || last_orphan_scan.elapsed() >= ORPHAN_SCAN_PERIOD) {
                    m.collect_orphans().await;
                    last_orphan_scan = tokio::time::Instant::now();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::owns;

    #[test]
    fn container_ownership() {
        let uid = "5fd3bbe2-d654-4304-b4d1-3612cacea3b9";
        assert!(owns(uid, "5fd3bbe2-d654-4304-b4d1-3612cacea3b9-nginx-0"));
        assert!(!owns(uid, "5fd3bbe2-d654-4304-b4d1-3612cacea3b9"));
        assert!(!owns(uid, "5fd3bbe2-d654-4304-b4d1-3612cacea3b90-nginx-0"));
    }
}
