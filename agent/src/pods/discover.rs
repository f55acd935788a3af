//! Adoption: rebuild a worker's view from containerd (containers carry labels, tasks tell whether they
//! run) and from the pinned namespaces on disk, so an agent restart restarts nothing and keeps the IP.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Container;

use super::state::{ContainerState, Terminated, exit_reason};
use super::worker::Worker;
use crate::images::PullPolicy;
use crate::runtime::labels;
use crate::runtime::stdio::StdioConfig;
use crate::runtime::{ContainerRecord, TaskStatus, logs};

impl Worker {
    pub(crate) async fn discover(&mut self) {
        let records = match self.ctx.runtime.list_containers(Some(&self.uid)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the pod's containers");
                Vec::new()
            }
        };
        // Per container name: the newest attempt is adopted, the one before it (kept dead, like the
        // kubelet's last dead container) gives `lastState`; anything older is removed.
        let mut by_name: HashMap<String, Vec<ContainerRecord>> = HashMap::new();
        for rec in records {
            if self.labels_ns_name.is_none() {
                self.labels_ns_name =
                    Some((rec.meta.pod_namespace.clone(), rec.meta.pod_name.clone()));
            }
            by_name
                .entry(rec.meta.container_name.clone())
                .or_default()
                .push(rec);
        }
        for (name, mut recs) in by_name {
            recs.sort_by_key(|r| std::cmp::Reverse(r.meta.attempt));
            for old in recs.iter().skip(2) {
                self.ctx.runtime.remove(&old.id).await;
            }
            let previous = recs.get(1).and_then(terminated_from_labels);
            if recs.len() > 1 && previous.is_none() {
                self.ctx.runtime.remove(&recs[1].id).await;
            }
            let Some(latest) = recs.into_iter().next() else {
                continue;
            };
            if let Some(mut st) = self.adopt(latest).await {
                if st.running.is_some() || st.terminated.is_some() {
                    st.previous = previous;
                } else {
                    // The newest attempt never started: the one before is the current termination.
                    st.terminated = previous;
                }
                self.containers.insert(name, st);
            }
        }

        let dir = self.sandbox_dir();
        let opened = tokio::task::spawn_blocking(move || crate::sandbox::open(&dir))
            .await
            .ok()
            .flatten();
        if let Some(sb) = opened {
            self.sandbox = Some(sb);
            let att = self.attachment();
            self.pod_ip = self
                .ctx
                .cni
                .cached(&att)
                .await
                .and_then(|n| n.ips.first().copied());
        }
        if !self.containers.is_empty() || self.sandbox.is_some() {
            tracing::info!(containers = self.containers.len(), ip = ?self.pod_ip, "adopted pod state from containerd");
        }
    }

    async fn adopt(&mut self, rec: ContainerRecord) -> Option<ContainerState> {
        let image = self
            .spec_image(&rec.meta.container_name)
            .unwrap_or_default();
        let mut st = ContainerState::new(&rec.meta.container_name, rec.meta.kind, &image);
        st.started_once = true;
        st.restart_count = rec.meta.attempt;
        if !image.is_empty()
            && let Ok(img) = self.ctx.images.ensure(&image, PullPolicy::Never, &[]).await
        {
            st.image = img.reference.clone();
            st.image_id = img.image_id.clone();
            if let Some(sig) = img
                .config
                .config()
                .as_ref()
                .and_then(|c| c.stop_signal().clone())
            {
                st.stop_signal = super::start::parse_signal(&sig).unwrap_or(15);
            }
        }
        let started_at = rec
            .labels
            .get(labels::STARTED_AT)
            .and_then(|s| s.parse().ok())
            .or(rec.created_at)
            .unwrap_or_else(jiff::Timestamp::now);
        let task = self.ctx.runtime.task_state(&rec.id).await.ok().flatten();
        match task.map(|t| t.status) {
            Some(TaskStatus::Running) | Some(TaskStatus::Paused) => {
                st.running = Some(super::state::Running {
                    id: rec.id.clone(),
                    started_at,
                });
                let log = logs::log_path(
                    &self.ctx.pod_log_dir,
                    &rec.meta.pod_namespace,
                    &rec.meta.pod_name,
                    &rec.meta.pod_uid,
                    &rec.meta.container_name,
                    rec.meta.attempt,
                );
                let stdio = self
                    .spec_container(&rec.meta.container_name)
                    .as_ref()
                    .map(StdioConfig::of)
                    .unwrap_or_default();
                self.ctx.runtime.reattach_logs(&rec.meta, log, stdio);
            }
            Some(TaskStatus::Stopped) => {
                st.running = Some(super::state::Running {
                    id: rec.id.clone(),
                    started_at,
                });
                self.pending_exits.push((rec.id.clone(), 0, None));
            }
            _ => {
                if let Some(t) = terminated_from_labels(&rec) {
                    st.terminated = Some(t);
                } else {
                    // Created but never started (the agent stopped half-way): it does not count.
                    self.ctx.runtime.remove(&rec.id).await;
                    if rec.meta.attempt == 0 {
                        return None;
                    }
                    st.restart_count = rec.meta.attempt - 1;
                }
            }
        }
        Some(st)
    }

    /// The spec of a container of this pod by name: init, app or ephemeral.
    fn spec_container(&self, name: &str) -> Option<Container> {
        let spec = self.pod.as_ref()?.spec.as_ref()?;
        if let Some(c) = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .find(|c| c.name == name)
        {
            return Some(c.clone());
        }
        spec.ephemeral_containers
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(super::start::ephemeral_container)
    }

    fn spec_image(&self, name: &str) -> Option<String> {
        self.spec_container(name).and_then(|c| c.image.clone())
    }
}

/// How an exited container ended, from the labels the agent put on it when it reaped the task.
fn terminated_from_labels(rec: &ContainerRecord) -> Option<Terminated> {
    let code = rec
        .labels
        .get(labels::EXIT_CODE)
        .and_then(|c| c.parse::<i32>().ok())?;
    let started_at = rec
        .labels
        .get(labels::STARTED_AT)
        .and_then(|s| s.parse().ok())
        .or(rec.created_at);
    let finished_at = rec
        .labels
        .get(labels::FINISHED_AT)
        .and_then(|s| s.parse().ok())
        .or(started_at)
        .unwrap_or_else(jiff::Timestamp::now);
    let reason = rec
        .labels
        .get(labels::EXIT_REASON)
        .cloned()
        .unwrap_or_else(|| exit_reason(code, false).into());
    Some(Terminated {
        container_id: rec.id.clone(),
        exit_code: code,
        reason,
        started_at,
        finished_at,
        message: None,
    })
}
