//! One probe task: wait out `initialDelaySeconds`, probe every `periodSeconds`, send `Unhealthy` events
//! for failures and a [`Report`] to the pod's worker whenever the thresholded result changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Probe;

use super::handlers::{self, Env};
use super::{ProbeKind, Report, Settings, Target, Tracker};
use crate::pods::recorder::container_field;
use crate::pods::worker::Msg;
use crate::runtime::labels::ContainerKind;

pub async fn run(t: Arc<Target>, kind: ProbeKind, probe: Probe, started: Arc<AtomicBool>) {
    let s = Settings::of(&probe);
    let mut tracker = Tracker::new(kind, &s);
    let mut limiter = EventLimiter::default();
    tokio::time::sleep(s.initial_delay).await;
    let uid = t.pod.metadata.uid.clone().unwrap_or_default();
    let mut tick = tokio::time::interval(s.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Startup gates the others: they only probe once the container has started.
        if kind != ProbeKind::Startup && !started.load(Ordering::Acquire) {
            continue;
        }
        if t.pod.metadata.deletion_timestamp.is_some() {
            return;
        }
        let env = Env {
            runtime: &t.ctx.runtime,
            run_dir: &t.ctx.run_dir,
            pod_uid: &uid,
            container: &t.container,
            container_id: &t.container_id,
            pod_ip: t.pod_ip,
        };
        let out = handlers::probe(&probe, &env, s.timeout).await;
        if !out.ok {
            tracing::debug!(container = %t.container_id, probe = kind.lower(), output = %out.output, "probe failed");
            let message = format!("{} probe failed: {}", kind.title(), out.output.trim_end());
            if limiter.admit(&message, Instant::now()) {
                t.ctx.recorder.warning(
                    &t.pod,
                    Some(container_field(ContainerKind::App, &t.container.name)),
                    "Unhealthy",
                    message,
                );
            }
        }
        let Some(healthy) = tracker.observe(out.ok) else {
            continue;
        };
        if kind == ProbeKind::Startup && healthy {
            started.store(true, Ordering::Release);
        }
        let Some(tx) = t.tx.upgrade() else { return };
        let report = Report {
            container_id: t.container_id.clone(),
            kind,
            healthy,
        };
        if tx.send(Msg::Probe(report)).is_err() {
            return;
        }
        // A started container is not probed for startup again; a failed liveness/startup probe kills it.
        if kind == ProbeKind::Startup || (kind == ProbeKind::Liveness && !healthy) {
            return;
        }
    }
}

/// The same `Unhealthy` message is recorded at most once a minute per probe (the kubelet's event
/// correlator aggregates repeats into a count instead; skiff's recorder only creates events).
const REPEAT_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct EventLimiter {
    last: Option<(String, Instant)>,
}

impl EventLimiter {
    pub fn admit(&mut self, message: &str, now: Instant) -> bool {
        if let Some((m, at)) = &self.last
            && m == message
            && now.duration_since(*at) < REPEAT_EVERY
        {
            return false;
        }
        self.last = Some((message.to_string(), now));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_limited() {
        let mut l = EventLimiter::default();
        let t0 = Instant::now();
        assert!(l.admit("a", t0));
        assert!(!l.admit("a", t0 + Duration::from_secs(1)));
        assert!(l.admit("b", t0 + Duration::from_secs(2)), "a new message");
        assert!(l.admit("a", t0 + Duration::from_secs(3)));
        assert!(l.admit("a", t0 + Duration::from_secs(64)), "a minute later");
    }
}
