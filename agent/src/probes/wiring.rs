//! The pod worker's side of probing: starting probe tasks for running containers, applying their
//! reports to container state, and killing containers whose liveness or startup probe failed.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::{ProbeKind, Report, Settings, Target};
use crate::pods::recorder::container_field;
use crate::pods::teardown::grace_period;
use crate::pods::worker::Worker;
use crate::runtime::labels::ContainerKind;

impl Worker {
    /// A probe result changed (called from the mailbox; the effects happen in [`Worker::sync_probes`]).
    pub(crate) fn apply_probe(&mut self, r: Report) {
        let Some(st) = self
            .containers
            .values_mut()
            .find(|c| c.running.as_ref().is_some_and(|x| x.id == r.container_id))
        else {
            return;
        };
        match (r.kind, r.healthy) {
            (ProbeKind::Readiness, ok) => st.probe_ready = Some(ok),
            (ProbeKind::Startup, true) => st.probe_started = Some(true),
            (kind, false) => self.probe_kills.push((r.container_id, kind)),
            (ProbeKind::Liveness, true) => {}
        }
    }

    /// Kill containers that failed liveness/startup probes and make every running app container's
    /// probe tasks run (new instances after starts or an agent restart).
    pub(crate) async fn sync_probes(&mut self, pod: &Arc<Pod>) {
        if pod.metadata.deletion_timestamp.is_some() {
            self.probes.stop_all();
            self.probe_kills.clear();
            return;
        }
        for (id, kind) in std::mem::take(&mut self.probe_kills) {
            self.probe_kill(pod, &id, kind);
        }
        let running: HashMap<String, String> = self
            .containers
            .values()
            .filter(|c| c.kind == ContainerKind::App)
            .filter_map(|c| c.running.as_ref().map(|r| (c.name.clone(), r.id.clone())))
            .collect();
        self.probes.retain(&running);
        let Some(spec) = pod.spec.as_ref() else {
            return;
        };
        let Some(tx) = self.probe_tx.clone() else {
            return;
        };
        for c in &spec.containers {
            let Some(id) = running.get(&c.name) else {
                continue;
            };
            if self.probes.has(&c.name, id) {
                continue;
            }
            let (has_startup, has_readiness) = super::declared(c);
            if let Some(st) = self.containers.get_mut(&c.name) {
                st.probe_started = has_startup.then_some(false);
                st.probe_ready = has_readiness.then_some(false);
            }
            self.probes.start(Target {
                ctx: self.ctx.clone(),
                pod: pod.clone(),
                container: c.clone(),
                container_id: id.clone(),
                pod_ip: self.pod_ip,
                tx: tx.clone(),
            });
        }
    }

    /// Stop a container whose liveness or startup probe failed: its stop signal, SIGKILL after the grace
    /// period. Its exit then goes through the usual restart policy and back-off.
    fn probe_kill(&mut self, pod: &Arc<Pod>, id: &str, kind: ProbeKind) {
        let Some(st) = self
            .containers
            .values()
            .find(|c| c.running.as_ref().is_some_and(|r| r.id == id))
        else {
            return;
        };
        let name = st.name.clone();
        let signal = st.stop_signal;
        self.probes.halt(&name);
        let probe = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == name))
            .and_then(|c| match kind {
                ProbeKind::Liveness => c.liveness_probe.clone(),
                _ => c.startup_probe.clone(),
            });
        let grace = probe
            .and_then(|p| Settings::of(&p).termination_grace)
            .unwrap_or_else(|| grace_period(Some(pod)));
        tracing::info!(container = %id, probe = kind.lower(), "probe failed, killing the container");
        self.ctx.recorder.normal(
            pod,
            Some(container_field(ContainerKind::App, &name)),
            "Killing",
            format!(
                "Container {name} failed {} probe, will be restarted",
                kind.lower()
            ),
        );
        self.stop_in_background(pod, &name, id, signal, grace);
    }
}
