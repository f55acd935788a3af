//! One pod's worker: a task with a mailbox of nudges (pod changed, container exited, resync) that
//! brings the pod's actual state to its desired state and reports status.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodSpec};
use tokio::sync::mpsc;

use super::Context;
use super::backoff::Backoff;
use super::files::EtcFiles;
use super::start::{self, Outcome, StartPlan};
use super::state::{ContainerState, Waiting};
use super::status;
use crate::cni::Attachment;
use crate::runtime::TaskStatus;
use crate::runtime::labels::ContainerKind;
use crate::sandbox::PodSandbox;

#[derive(Debug)]
pub enum Msg {
    Pod(Arc<Pod>),
    Gone,
    Exit {
        id: String,
        code: u32,
        at: Option<jiff::Timestamp>,
    },
    Oom {
        id: String,
    },
    /// Look at everything again (the relist); with the tasks containerd listed for it, when it could.
    Resync(Option<super::exits::Relist>),
    /// A probe result changed.
    Probe(crate::probes::Report),
    /// Node-pressure eviction: fail the pod and kill its containers at once.
    Evict(status::PodFailure),
}

pub(crate) enum Flow {
    Done,
    Wake(Option<Instant>),
}

pub struct Prepared {
    pub volumes: HashMap<String, PathBuf>,
    /// The pod's claims as resolved at its start (re-syncs do not ask the API again).
    pub claims: HashMap<String, crate::volumes::claims::Resolved>,
    pub etc: EtcFiles,
    /// When configMap/secret volumes were last re-synced.
    pub refreshed: Instant,
}

/// How often configMap/secret/projected volume content is re-synced from the API.
const VOLUME_RESYNC: Duration = Duration::from_secs(60);

/// Why a pod's volumes could not be prepared.
enum PrepareError {
    /// Its claims are not usable yet (the kubelet's volume manager wait): a `FailedMount` event, the
    /// containers stay ContainerCreating.
    Mount(String),
    /// Anything else: a `FailedMount` event and CreateContainerConfigError.
    Config(String),
}

pub struct Worker {
    pub(crate) ctx: Arc<Context>,
    pub(crate) uid: String,
    /// This pod's place in the order pods reached the agent (admission order of the startup gate).
    pub(crate) arrival: u64,
    pub(crate) rx: mpsc::UnboundedReceiver<Msg>,
    pub(crate) pod: Option<Arc<Pod>>,
    pub(crate) gone: bool,
    pub(crate) discovered: bool,
    /// Namespace and name from container labels, for pods no longer in the API.
    pub(crate) labels_ns_name: Option<(String, String)>,
    pub(crate) sandbox: Option<PodSandbox>,
    pub(crate) pod_ip: Option<IpAddr>,
    pub(crate) network_released: bool,
    pub(crate) sandbox_backoff: Backoff,
    pub(crate) sandbox_retry: Option<Instant>,
    pub(crate) prepared: Option<Prepared>,
    pub(crate) containers: HashMap<String, ContainerState>,
    pub(crate) start_time: Option<jiff::Timestamp>,
    /// The status last sent to the API (`None`: not sent yet, or to be sent again).
    pub(crate) last_status: Option<k8s_openapi::api::core::v1::PodStatus>,
    pub(crate) last_conditions: Vec<PodCondition>,
    pub(crate) pending_exits: Vec<(String, u32, Option<jiff::Timestamp>)>,
    pub(crate) resync: bool,
    /// The tasks listed for the pending resync (`None`: ask containerd about each running container).
    pub(crate) relist: Option<super::exits::Relist>,
    pub(crate) probes: crate::probes::PodProbes,
    /// For probe tasks to report to this worker (weak: the mailbox closes when the manager lets go).
    pub(crate) probe_tx: Option<mpsc::WeakUnboundedSender<Msg>>,
    pub(crate) probe_kills: Vec<(String, crate::probes::ProbeKind)>,
    /// Set when the agent fails the pod itself (`activeDeadlineSeconds`); nothing starts again.
    pub(crate) failure: Option<status::PodFailure>,
    /// Whether the failed pod's containers have been told to stop.
    pub(crate) failure_stopped: bool,
}

/// Whether the API's pod has a different status for one of the conditions the worker last reported.
fn conditions_differ(pod: &Pod, reported: &[PodCondition]) -> bool {
    let api = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    reported.iter().any(|mine| {
        api.iter()
            .find(|c| c.type_ == mine.type_)
            .is_some_and(|c| c.status != mine.status)
    })
}

impl Worker {
    pub fn new(
        ctx: Arc<Context>,
        uid: String,
        pod: Option<Arc<Pod>>,
        rx: mpsc::UnboundedReceiver<Msg>,
    ) -> Self {
        let gone = pod.is_none();
        let arrival = ctx
            .arrivals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            ctx,
            uid,
            arrival,
            rx,
            pod,
            gone,
            discovered: false,
            labels_ns_name: None,
            sandbox: None,
            pod_ip: None,
            network_released: false,
            sandbox_backoff: Backoff::default(),
            sandbox_retry: None,
            prepared: None,
            containers: HashMap::new(),
            start_time: None,
            last_status: None,
            last_conditions: Vec::new(),
            pending_exits: Vec::new(),
            resync: false,
            relist: None,
            probes: crate::probes::PodProbes::default(),
            probe_tx: None,
            probe_kills: Vec::new(),
            failure: None,
            failure_stopped: false,
        }
    }

    pub(crate) fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Pod(p) => {
                // Someone else changed a condition this worker owns (the node lifecycle controller marks
                // pods not Ready while the node is NotReady): send the status again, as the kubelet does.
                if conditions_differ(&p, &self.last_conditions) {
                    self.last_status = None;
                }
                self.pod = Some(p);
            }
            Msg::Gone => self.gone = true,
            Msg::Exit { id, code, at } => self.pending_exits.push((id, code, at)),
            Msg::Oom { id } => {
                if let Some(c) = self
                    .containers
                    .values_mut()
                    .find(|c| c.running.as_ref().is_some_and(|r| r.id == id))
                {
                    c.oom = true;
                }
            }
            Msg::Resync(listed) => {
                self.resync = true;
                self.relist = listed;
            }
            Msg::Probe(r) => self.apply_probe(r),
            Msg::Evict(f) => self.fail(f),
        }
    }

    pub async fn run(mut self, done: mpsc::UnboundedSender<String>) {
        let mut wake: Option<Instant> = Some(Instant::now());
        loop {
            let msg = match wake {
                Some(at) => tokio::select! {
                    m = self.rx.recv() => match m { Some(m) => Some(m), None => break },
                    _ = tokio::time::sleep_until(at.into()) => None,
                },
                None => match self.rx.recv().await {
                    Some(m) => Some(m),
                    None => break,
                },
            };
            if let Some(m) = msg {
                self.apply(m);
            }
            while let Ok(m) = self.rx.try_recv() {
                self.apply(m);
            }
            match self.sync().await {
                Flow::Done => break,
                Flow::Wake(at) => wake = at,
            }
        }
        let _ = done.send(self.uid.clone());
    }

    pub(crate) fn ns_name(&self) -> (String, String) {
        if let Some(p) = &self.pod {
            return (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            );
        }
        self.labels_ns_name.clone().unwrap_or_default()
    }

    pub(crate) fn sandbox_dir(&self) -> PathBuf {
        self.ctx.run_dir.join("pods").join(&self.uid)
    }

    pub(crate) fn pod_dir(&self) -> PathBuf {
        crate::volumes::pod_dir(&self.ctx.root_dir, &self.uid)
    }

    pub(crate) fn attachment(&self) -> Attachment {
        let (ns, name) = self.ns_name();
        let netns = self
            .sandbox
            .as_ref()
            .map(|s| s.net.clone())
            .unwrap_or_else(|| self.sandbox_dir().join("ns").join("net"));
        Attachment {
            container_id: self.uid.clone(),
            netns,
            ifname: "eth0".into(),
            args: vec![
                ("K8S_POD_NAMESPACE".into(), ns),
                ("K8S_POD_NAME".into(), name),
                ("K8S_POD_UID".into(), self.uid.clone()),
            ],
            port_mappings: self
                .pod
                .as_deref()
                .map(crate::cni::port_mappings)
                .unwrap_or_default(),
        }
    }

    async fn sync(&mut self) -> Flow {
        if !self.discovered {
            self.discover().await;
            self.discovered = true;
        }
        for (id, code, at) in std::mem::take(&mut self.pending_exits) {
            self.on_exit(&id, code, at, true).await;
        }
        let resynced = std::mem::take(&mut self.resync);
        if resynced {
            let listed = self.relist.take();
            self.check_tasks(listed.as_ref()).await;
        }
        let pod = match (&self.pod, self.gone) {
            (Some(p), false) => p.clone(),
            (p, _) => {
                let p = p.clone();
                self.probes.stop_all();
                self.teardown(p).await;
                return Flow::Done;
            }
        };
        if pod.metadata.deletion_timestamp.is_some() {
            self.probes.stop_all();
            self.teardown(Some(pod)).await;
            return Flow::Done;
        }
        let Some(spec) = pod.spec.as_ref() else {
            return Flow::Wake(None);
        };
        let api_phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending");
        if status::is_terminal(api_phase) && !self.any_running() && self.failure.is_none() {
            // A finished pod keeps the status it has; only give its network back.
            self.release_network().await;
            return Flow::Wake(None);
        }
        if self.start_time.is_none() {
            self.start_time = Some(
                pod.status
                    .as_ref()
                    .and_then(|s| s.start_time.clone())
                    .map(|t| t.0)
                    .unwrap_or_else(jiff::Timestamp::now),
            );
        }
        let deadline = self.active_deadline(spec);
        if self.failure.is_some() {
            return self.end_failed(&pod).await;
        }
        let now = Instant::now();
        let phase = status::phase(spec, &self.containers);
        if status::is_terminal(phase)
            && !self.any_running()
            && self.containers.values().any(|c| c.started_once)
        {
            self.push_status(&pod).await;
            if self.last_status.is_some() {
                self.release_network().await;
            }
            return self.status_retry();
        }

        if self.sandbox.is_none()
            && !self
                .containers
                .values()
                .any(|c| c.started_once || c.running.is_some())
        {
            let conditions = *self
                .ctx
                .node_conditions
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Err(f) = super::eviction::admit(&pod, conditions) {
                self.fail(f);
                return self.end_failed(&pod).await;
            }
        }
        if self.sandbox.is_none() || self.pod_ip.is_none() {
            if let Some(at) = self.sandbox_retry
                && at > now
            {
                self.push_status(&pod).await;
                return Flow::Wake(Some(at));
            }
            let t = Instant::now();
            let ctx = self.ctx.clone();
            let permit = ctx.startup_gate.acquire(self.arrival).await;
            let res = self.setup_sandbox(&pod).await;
            drop(permit);
            tracing::debug!(
                elapsed_ms = t.elapsed().as_millis() as u64,
                "pod sandbox setup"
            );
            if let Err(msg) = res {
                let delay = self
                    .sandbox_backoff
                    .next_delay(Duration::ZERO)
                    .max(Duration::from_secs(1));
                tracing::warn!(error = %msg, retry_in = ?delay, "pod sandbox setup failed");
                self.ctx.recorder.warning(
                    &pod,
                    None,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {msg}"),
                );
                self.sandbox_retry = Some(now + delay);
                self.push_status(&pod).await;
                return Flow::Wake(Some(now + delay));
            }
            self.sandbox_backoff.reset();
            self.sandbox_retry = None;
        }
        if self.prepared.is_none() {
            match self.prepare(&pod).await {
                Ok(p) => self.prepared = Some(p),
                Err(PrepareError::Mount(msg)) => {
                    tracing::debug!(error = %msg, "pod volumes not ready; retrying");
                    self.ctx.recorder.warning(&pod, None, "FailedMount", msg);
                    self.push_status(&pod).await;
                    return Flow::Wake(Some(now + Duration::from_secs(10)));
                }
                Err(PrepareError::Config(msg)) => {
                    self.ctx
                        .recorder
                        .warning(&pod, None, "FailedMount", msg.clone());
                    for c in spec
                        .init_containers
                        .iter()
                        .flatten()
                        .chain(spec.containers.iter())
                    {
                        let st = self.containers.entry(c.name.clone()).or_insert_with(|| {
                            ContainerState::new(
                                &c.name,
                                ContainerKind::App,
                                c.image.as_deref().unwrap_or_default(),
                            )
                        });
                        if st.running.is_none() {
                            st.waiting = Some(Waiting {
                                reason: "CreateContainerConfigError".into(),
                                message: Some(msg.clone()),
                            });
                        }
                    }
                    self.push_status(&pod).await;
                    return Flow::Wake(Some(now + Duration::from_secs(10)));
                }
            }
        } else if resynced
            && let Some(p) = self.prepared.as_mut()
            && p.refreshed.elapsed() >= VOLUME_RESYNC
        {
            p.refreshed = Instant::now();
            let claims = p.claims.clone();
            let dir = self.pod_dir();
            if let Err(e) =
                crate::volumes::refresh(&self.ctx.client, &self.ctx.tokens, &dir, &pod, &claims)
                    .await
            {
                tracing::debug!(error = %e, "volume re-sync failed; old content kept");
            }
        }

        let policy = status::restart_policy(spec).to_string();
        let mut next_wake: Option<Instant> = None;
        let wake_at = |at: Instant, w: &mut Option<Instant>| *w = Some(w.map_or(at, |x| x.min(at)));
        let mut init_done = true;
        for ic in spec.init_containers.iter().flatten() {
            let st = self.containers.entry(ic.name.clone()).or_insert_with(|| {
                ContainerState::new(
                    &ic.name,
                    ContainerKind::Init,
                    ic.image.as_deref().unwrap_or_default(),
                )
            });
            if st.succeeded() {
                continue;
            }
            init_done = false;
            if st.running.is_some() || (st.failed() && policy == "Never") {
                break;
            }
            if let Some(at) = st.next_start
                && at > now
            {
                wake_at(at, &mut next_wake);
                break;
            }
            let plan = self.plan(&pod, ic, ContainerKind::Init);
            let outcome = start::run(self.ctx.clone(), plan).await;
            self.apply_outcome(outcome, &pod);
            break;
        }
        if init_done {
            let mut plans = Vec::new();
            for c in &spec.containers {
                let st = self.containers.entry(c.name.clone()).or_insert_with(|| {
                    ContainerState::new(
                        &c.name,
                        ContainerKind::App,
                        c.image.as_deref().unwrap_or_default(),
                    )
                });
                if st.running.is_some() {
                    continue;
                }
                if let Some(t) = &st.terminated {
                    let restart = match policy.as_str() {
                        "Always" => true,
                        "OnFailure" => t.exit_code != 0,
                        _ => false,
                    };
                    if !restart {
                        continue;
                    }
                }
                if let Some(at) = st.next_start
                    && at > now
                {
                    wake_at(at, &mut next_wake);
                    continue;
                }
                plans.push(self.plan(&pod, c, ContainerKind::App));
            }
            let ctx = self.ctx.clone();
            let outcomes =
                futures::future::join_all(plans.into_iter().map(|p| start::run(ctx.clone(), p)))
                    .await;
            for o in outcomes {
                self.apply_outcome(o, &pod);
            }
        }
        // Ephemeral containers start once the sandbox is there, initialized or not, and never again.
        for e in spec.ephemeral_containers.iter().flatten() {
            if let Some(at) = self.start_ephemeral(&pod, e).await {
                wake_at(at, &mut next_wake);
            }
        }
        self.sync_probes(&pod).await;
        // Starting may have scheduled retries.
        for st in self.containers.values() {
            if st.running.is_none()
                && let Some(at) = st.next_start
            {
                wake_at(at, &mut next_wake);
            }
        }
        if let Some(at) = deadline {
            wake_at(at, &mut next_wake);
        }
        self.push_status(&pod).await;
        if let Flow::Wake(Some(at)) = self.status_retry() {
            wake_at(at, &mut next_wake);
        }
        Flow::Wake(next_wake)
    }

    /// Start an ephemeral container that has not run yet; `Some(time)` to look again then.
    async fn start_ephemeral(
        &mut self,
        pod: &Arc<Pod>,
        e: &k8s_openapi::api::core::v1::EphemeralContainer,
    ) -> Option<Instant> {
        let st = self.containers.entry(e.name.clone()).or_insert_with(|| {
            ContainerState::new(
                &e.name,
                ContainerKind::Ephemeral,
                e.image.as_deref().unwrap_or_default(),
            )
        });
        if st.started_once || st.running.is_some() || st.terminated.is_some() {
            return None;
        }
        if let Some(at) = st.next_start
            && at > Instant::now()
        {
            return Some(at);
        }
        let c = start::ephemeral_container(e)?;
        let mut plan = self.plan(pod, &c, ContainerKind::Ephemeral);
        if let Some(target) = e.target_container_name.as_deref().filter(|t| !t.is_empty()) {
            match self.target_pid(target).await {
                Some(pid) => plan.pid_ns = Some(format!("/proc/{pid}/ns/pid").into()),
                None => {
                    let retry = Instant::now() + Duration::from_secs(1);
                    if let Some(st) = self.containers.get_mut(&e.name) {
                        st.waiting = Some(Waiting {
                            reason: "CreateContainerConfigError".into(),
                            message: Some(format!("target container {target:?} is not running")),
                        });
                        st.next_start = Some(retry);
                    }
                    return Some(retry);
                }
            }
        }
        let outcome = start::run(self.ctx.clone(), plan).await;
        self.apply_outcome(outcome, pod);
        self.containers
            .get(&e.name)
            .filter(|st| st.running.is_none())
            .and_then(|st| st.next_start)
    }

    /// The host PID of a running container's main process.
    async fn target_pid(&self, name: &str) -> Option<u32> {
        let id = self.containers.get(name)?.running.as_ref()?.id.clone();
        let task = self.ctx.runtime.task_state(&id).await.ok().flatten()?;
        (task.status == TaskStatus::Running && task.pid > 0).then_some(task.pid)
    }

    /// `spec.activeDeadlineSeconds`, counted from the pod's start time as the kubelet does: once it has
    /// passed, the pod fails with reason DeadlineExceeded; before, when to look again.
    fn active_deadline(&mut self, spec: &PodSpec) -> Option<Instant> {
        let secs = spec.active_deadline_seconds?;
        if self.failure.is_some() {
            return None;
        }
        let start = self.start_time.unwrap_or_else(jiff::Timestamp::now);
        let active = jiff::Timestamp::now().duration_since(start);
        let left = jiff::SignedDuration::from_secs(secs) - active;
        if left.is_positive() {
            return Some(Instant::now() + left.unsigned_abs());
        }
        self.fail(status::PodFailure {
            reason: "DeadlineExceeded".into(),
            message: "Pod was active on the node longer than the specified deadline".into(),
            disruption: false,
            grace: None,
        });
        None
    }

    /// The agent fails the pod (deadline, eviction, admission): a Warning event named after the reason,
    /// and from now on [`Worker::end_failed`] instead of syncing. A pod already failed stays as it is.
    fn fail(&mut self, f: status::PodFailure) {
        if self.failure.is_some() {
            return;
        }
        tracing::info!(reason = %f.reason, message = %f.message, "failing the pod");
        if let Some(p) = &self.pod {
            self.ctx
                .recorder
                .warning(p, None, &f.reason, f.message.clone());
        }
        self.failure = Some(f);
    }

    /// If the last status could not be sent, try again soon.
    fn status_retry(&self) -> Flow {
        if self.last_status.is_none() {
            Flow::Wake(Some(Instant::now() + Duration::from_secs(1)))
        } else {
            Flow::Wake(None)
        }
    }

    pub(crate) fn any_running(&self) -> bool {
        self.containers.values().any(|c| c.running.is_some())
    }

    fn plan(
        &self,
        pod: &Arc<Pod>,
        c: &k8s_openapi::api::core::v1::Container,
        kind: ContainerKind,
    ) -> StartPlan {
        let st = self.containers.get(&c.name);
        let prepared = self.prepared.as_ref();
        StartPlan {
            pod: pod.clone(),
            container: c.clone(),
            kind,
            attempt: st.map(ContainerState::next_attempt).unwrap_or(0),
            // The kubelet keeps the last dead container (its `lastState` survives an agent restart); the
            // one before it goes when the next attempt starts.
            previous_id: st.and_then(|s| s.previous.as_ref().map(|t| t.container_id.clone())),
            pod_ip: self.pod_ip,
            sandbox: self
                .sandbox
                .as_ref()
                .map(|s| (s.net.clone(), s.ipc.clone(), s.uts.clone())),
            volumes: prepared.map(|p| p.volumes.clone()).unwrap_or_default(),
            etc: EtcFiles::in_dir(&self.pod_dir()),
            pod_dir: self.pod_dir(),
            arrival: self.arrival,
            pid_ns: None,
        }
    }

    fn apply_outcome(&mut self, o: Outcome, pod: &Pod) {
        let now = Instant::now();
        let Some(st) = self.containers.get_mut(o.name()) else {
            return;
        };
        match o {
            Outcome::Started {
                attempt,
                started,
                image,
                image_id,
                stop_signal,
                ..
            } => {
                // Remember the start time in containerd, so an agent restart reports the same startedAt.
                let (rt, id) = (self.ctx.runtime.clone(), started.id.clone());
                let labels = HashMap::from([(
                    crate::runtime::labels::STARTED_AT.to_string(),
                    started.started_at.to_string(),
                )]);
                tokio::spawn(async move {
                    if let Err(e) = rt.set_labels(&id, labels).await {
                        tracing::debug!(container = %id, error = %e, "cannot record start time");
                    }
                });
                st.started(attempt, started.id, started.started_at);
                st.image = image;
                st.image_id = image_id;
                st.stop_signal = stop_signal;
                st.pull_backoff.reset();
            }
            Outcome::PullFailed { message, .. } => {
                let delay = st
                    .pull_backoff
                    .next_delay(Duration::ZERO)
                    .max(Duration::from_secs(1));
                let reason = if delay > Duration::from_secs(1) {
                    "ImagePullBackOff"
                } else {
                    "ErrImagePull"
                };
                if reason == "ImagePullBackOff" {
                    self.ctx.recorder.normal(
                        pod,
                        Some(super::recorder::container_field(st.kind, &st.name)),
                        "BackOff",
                        format!("Back-off pulling image \"{}\"", st.image),
                    );
                }
                st.waiting = Some(Waiting {
                    reason: reason.into(),
                    message: Some(message),
                });
                st.next_start = Some(now + delay);
            }
            Outcome::ConfigError { message, .. } => {
                st.waiting = Some(Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: Some(message),
                });
                st.next_start = Some(now + Duration::from_secs(10));
            }
            Outcome::StartFailed {
                attempt,
                id,
                message,
                image,
                image_id,
                ..
            } => {
                let at = jiff::Timestamp::now();
                st.started(attempt, id, at);
                st.exited(128, at);
                if let Some(t) = st.terminated.as_mut() {
                    t.reason = "StartError".into();
                    t.message = Some(message.clone());
                    t.started_at = None;
                }
                st.image = image;
                st.image_id = image_id;
                st.pull_backoff.reset();
                let restart = pod
                    .spec
                    .as_ref()
                    .is_some_and(|s| super::status::restart_policy(s) != "Never");
                if restart {
                    let delay = st.backoff.next_delay(Duration::ZERO);
                    st.waiting = Some(Waiting {
                        reason: if delay.is_zero() {
                            "RunContainerError".into()
                        } else {
                            "CrashLoopBackOff".into()
                        },
                        message: Some(message),
                    });
                    st.next_start = Some(now + delay);
                }
            }
            Outcome::RunFailed { message, .. } => {
                let delay = st
                    .backoff
                    .next_delay(Duration::ZERO)
                    .max(Duration::from_secs(1));
                st.waiting = Some(Waiting {
                    reason: "CreateContainerError".into(),
                    message: Some(message),
                });
                st.next_start = Some(now + delay);
            }
        }
    }

    async fn setup_sandbox(&mut self, pod: &Pod) -> Result<(), String> {
        if self.sandbox.is_none() {
            let dir = self.sandbox_dir();
            let hostname = hostname(pod);
            // A quantity that does not parse fails the container itself, with the reason.
            let resources = crate::runtime::cgroups::pod_resources(pod).ok();
            let uid = self.uid.clone();
            let sb = tokio::task::spawn_blocking(move || {
                let sb = crate::sandbox::pin(&dir, &hostname)?;
                // The containers' own cgroups still carry their limits if this fails, so the pod runs.
                if let Some(r) = resources
                    && let Err(e) = crate::runtime::cgroups::apply_pod(&uid, &r)
                {
                    tracing::warn!(error = %e, "pod cgroup left at its defaults");
                }
                Ok::<_, crate::sandbox::SandboxError>(sb)
            })
            .await
            .map_err(|e| format!("pin task: {e}"))?
            .map_err(|e| format!("pin pod namespaces: {e}"))?;
            self.sandbox = Some(sb);
            self.pod_ip = None;
        }
        if self.pod_ip.is_none() && host_network(pod) {
            // The pod shares the node's network: no CNI, the pod IP is the node IP.
            self.pod_ip = Some(self.ctx.node_ip);
            self.network_released = false;
        }
        if self.pod_ip.is_none() {
            let att = self.attachment();
            let net = self
                .ctx
                .cni
                .add(&att)
                .await
                .map_err(|e| format!("CNI ADD: {e}"))?;
            self.pod_ip = Some(*net.ips.first().ok_or("CNI ADD returned no IP address")?);
            self.network_released = false;
        }
        Ok(())
    }

    async fn prepare(&self, pod: &Pod) -> Result<Prepared, PrepareError> {
        let dir = self.pod_dir();
        // Claims first, as the kubelet waits for them before it sets up any volume.
        let claims = crate::volumes::claims::resolve(&self.ctx.client, pod, &self.ctx.storage_dir)
            .await
            .map_err(|e| PrepareError::Mount(e.to_string()))?;
        let mut objects =
            crate::volumes::objects::Objects::for_volumes(&self.ctx.client, &self.ctx.tokens, pod)
                .await
                .map_err(PrepareError::Config)?;
        objects.claims = claims.clone();
        let volumes = crate::volumes::prepare(&dir, pod, &objects)
            .await
            .map_err(|e| PrepareError::Config(e.to_string()))?;
        let etc = EtcFiles::in_dir(&dir);
        super::files::write(&etc, pod, &hostname(pod), self.pod_ip, &self.ctx.dns)
            .await
            .map_err(|e| PrepareError::Config(format!("write pod files: {e}")))?;
        Ok(Prepared {
            volumes,
            claims,
            etc,
            refreshed: Instant::now(),
        })
    }
}

pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The pod's hostname: `spec.hostname` or the pod name, at most 63 characters.
pub fn hostname(pod: &Pod) -> String {
    let h = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    h.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}
