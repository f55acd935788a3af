//! Container probes (startup, liveness, readiness), the kubelet's prober restated: one tokio task per
//! (container instance, probe type), results flipped after success/failure thresholds, sent to the pod's
//! worker as [`Report`]s. The worker owns the consequences (readiness in status, liveness kills).

pub mod grpc;
pub mod handlers;
pub mod runner;
pub mod wiring;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::task::JoinHandle;

use crate::pods::Context;
use crate::pods::worker::Msg;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    /// As the kubelet writes it in events: "Liveness probe failed: ...".
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }

    pub fn lower(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
        }
    }
}

/// A probe result crossed its threshold: the container instance `container_id` is now healthy or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub container_id: String,
    pub kind: ProbeKind,
    pub healthy: bool,
}

/// Timing and thresholds of one probe, with the kubelet's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// `probe.terminationGracePeriodSeconds`: overrides the pod's grace for a liveness/startup kill.
    pub termination_grace: Option<Duration>,
}

fn positive(v: Option<i32>, default: u32) -> u32 {
    match v {
        Some(v) if v > 0 => v as u32,
        _ => default,
    }
}

impl Settings {
    pub fn of(p: &Probe) -> Self {
        Self {
            initial_delay: Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64),
            period: Duration::from_secs(positive(p.period_seconds, 10).into()),
            timeout: Duration::from_secs(positive(p.timeout_seconds, 1).into()),
            success_threshold: positive(p.success_threshold, 1),
            failure_threshold: positive(p.failure_threshold, 3),
            termination_grace: p
                .termination_grace_period_seconds
                .map(|s| Duration::from_secs(s.max(1) as u64)),
        }
    }
}

/// The threshold state machine: a result changes only after `success_threshold` consecutive successes
/// or `failure_threshold` consecutive failures.
#[derive(Debug, Clone)]
pub struct Tracker {
    success_threshold: u32,
    failure_threshold: u32,
    result: Option<bool>,
    last: Option<bool>,
    run: u32,
}

impl Tracker {
    /// Initial results as the kubelet's: readiness starts failed, liveness succeeded, startup unknown.
    pub fn new(kind: ProbeKind, s: &Settings) -> Self {
        Self {
            success_threshold: s.success_threshold,
            failure_threshold: s.failure_threshold,
            result: match kind {
                ProbeKind::Readiness => Some(false),
                ProbeKind::Liveness => Some(true),
                ProbeKind::Startup => None,
            },
            last: None,
            run: 0,
        }
    }

    pub fn result(&self) -> Option<bool> {
        self.result
    }

    /// Record one probe outcome; the new result when it changed.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let threshold = if ok {
            self.success_threshold
        } else {
            self.failure_threshold
        };
        if self.result != Some(ok) && self.run >= threshold {
            self.result = Some(ok);
            return Some(ok);
        }
        None
    }
}

/// The probe tasks of one running container instance.
struct Instance {
    container_id: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// All probe tasks of one pod, keyed by container name; dropping it stops them.
#[derive(Default)]
pub struct PodProbes {
    instances: HashMap<String, Instance>,
}

/// What a probe task needs from the pod worker.
pub struct Target {
    pub ctx: Arc<Context>,
    pub pod: Arc<Pod>,
    pub container: Container,
    pub container_id: String,
    pub pod_ip: Option<IpAddr>,
    pub tx: tokio::sync::mpsc::WeakUnboundedSender<Msg>,
}

/// Which probes a container has: (has startup, has readiness).
pub fn declared(c: &Container) -> (bool, bool) {
    (c.startup_probe.is_some(), c.readiness_probe.is_some())
}

impl PodProbes {
    /// Whether probes run (or ran) for this container instance.
    pub fn has(&self, name: &str, container_id: &str) -> bool {
        self.instances
            .get(name)
            .is_some_and(|i| i.container_id == container_id)
    }

    /// Start the probe tasks of a newly running container instance (replacing an older instance's).
    pub fn start(&mut self, t: Target) {
        let name = t.container.name.clone();
        let started = Arc::new(AtomicBool::new(t.container.startup_probe.is_none()));
        let target = Arc::new(t);
        let mut tasks = Vec::new();
        for (kind, probe) in [
            (ProbeKind::Startup, &target.container.startup_probe),
            (ProbeKind::Liveness, &target.container.liveness_probe),
            (ProbeKind::Readiness, &target.container.readiness_probe),
        ] {
            if let Some(p) = probe {
                let task = runner::run(target.clone(), kind, p.clone(), started.clone());
                tasks.push(tokio::spawn(task));
            }
        }
        self.instances.insert(
            name,
            Instance {
                container_id: target.container_id.clone(),
                tasks,
            },
        );
    }

    /// Stop probing a container instance, remembering it so it is not probed again.
    pub fn halt(&mut self, name: &str) {
        if let Some(i) = self.instances.get_mut(name) {
            for t in i.tasks.drain(..) {
                t.abort();
            }
        }
    }

    /// Forget containers that no longer run (name → running container id).
    pub fn retain(&mut self, running: &HashMap<String, String>) {
        self.instances
            .retain(|name, i| running.get(name) == Some(&i.container_id));
    }

    /// Stop every probe (the pod is terminating).
    pub fn stop_all(&mut self) {
        self.instances.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(success: u32, failure: u32) -> Settings {
        Settings {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
            termination_grace: None,
        }
    }

    #[test]
    fn container_status_follows_probe_results() {
        use crate::pods::state::ContainerState;
        use crate::pods::status::container_status;
        use crate::runtime::labels::ContainerKind;
        let mut c = ContainerState::new("app", ContainerKind::App, "busybox");
        let st = |c: &ContainerState| {
            let s = container_status(c, "ContainerCreating");
            (s.ready, s.started)
        };
        assert_eq!(st(&c), (false, Some(false)), "not running");
        c.started(0, "u-app-0".into(), jiff::Timestamp::now());
        assert_eq!(st(&c), (true, Some(true)), "no probes: ready once running");
        c.probe_started = Some(false);
        c.probe_ready = Some(true);
        assert_eq!(st(&c), (false, Some(false)), "startup gates readiness");
        c.probe_started = Some(true);
        assert_eq!(st(&c), (true, Some(true)));
        c.probe_ready = Some(false);
        assert_eq!(st(&c), (false, Some(true)));
        c.exited(137, jiff::Timestamp::now());
        c.started(1, "u-app-1".into(), jiff::Timestamp::now());
        assert_eq!(
            (c.probe_ready, c.probe_started),
            (None, None),
            "a new instance starts over"
        );
    }

    #[test]
    fn defaults() {
        let s = Settings::of(&Probe::default());
        assert_eq!(s.period, Duration::from_secs(10));
        assert_eq!(s.timeout, Duration::from_secs(1));
        assert_eq!((s.success_threshold, s.failure_threshold), (1, 3));
        assert_eq!(s.initial_delay, Duration::ZERO);
        let s = Settings::of(&Probe {
            period_seconds: Some(0),
            timeout_seconds: Some(-1),
            initial_delay_seconds: Some(5),
            failure_threshold: Some(1),
            termination_grace_period_seconds: Some(7),
            ..Default::default()
        });
        assert_eq!(s.period, Duration::from_secs(10));
        assert_eq!(s.timeout, Duration::from_secs(1));
        assert_eq!(s.initial_delay, Duration::from_secs(5));
        assert_eq!(s.failure_threshold, 1);
        assert_eq!(s.termination_grace, Some(Duration::from_secs(7)));
    }

    #[test]
    fn readiness_starts_false_and_flips_after_thresholds() {
        let mut t = Tracker::new(ProbeKind::Readiness, &settings(2, 3));
        assert_eq!(t.result(), Some(false));
        assert_eq!(t.observe(true), None, "one success of two");
        assert_eq!(t.observe(false), None, "already failed");
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(true), Some(true));
        assert_eq!(t.observe(true), None, "no change");
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None, "a success resets the failure run");
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(false));
    }

    #[test]
    fn liveness_starts_healthy() {
        let mut t = Tracker::new(ProbeKind::Liveness, &settings(1, 3));
        assert_eq!(t.result(), Some(true));
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(false));
    }

    #[test]
    fn startup_reports_either_way() {
        let mut t = Tracker::new(ProbeKind::Startup, &settings(1, 2));
        assert_eq!(t.result(), None);
        assert_eq!(t.observe(true), Some(true));
        let mut t = Tracker::new(ProbeKind::Startup, &settings(1, 2));
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(false));
    }
}
