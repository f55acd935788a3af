//! Reporting pod status to `pods/<name>/status`: computed from the worker's view, sent as a merge patch
//! only when it changed.

use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};

use super::status::{self, StatusInput};
use super::worker::Worker;

impl Worker {
    pub(crate) async fn push_status(&mut self, pod: &Pod) {
        let Some(name) = pod.metadata.name.clone() else {
            return;
        };
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let input = StatusInput {
            pod,
            failure: self.failure.as_ref(),
            containers: &self.containers,
            sandbox_ready: self.sandbox.is_some() && self.pod_ip.is_some(),
            pod_ip: self.pod_ip,
            host_ip: self.ctx.node_ip,
            start_time: self.start_time.unwrap_or_else(jiff::Timestamp::now),
            previous: &self.last_conditions,
            now: jiff::Timestamp::now(),
        };
        let st = status::compute(&input);
        // Compared as typed values: serializing every pod's status at every re-sync only to compare it was
        // a noticeable part of the idle agent's CPU with 100 pods.
        if self.last_status.as_ref() == Some(&st) {
            return;
        }
        let Ok(value) = serde_json::to_value(&st) else {
            return;
        };
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
        let patch = serde_json::json!({ "status": value });
        let t = Instant::now();
        let res = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        tracing::debug!(elapsed_ms = t.elapsed().as_millis() as u64, phase = ?st.phase, "status patch");
        match res {
            Ok(_) => {
                self.last_conditions = st.conditions.clone().unwrap_or_default();
                self.last_status = Some(st);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot update pod status");
                self.last_status = None;
            }
        }
    }
}
