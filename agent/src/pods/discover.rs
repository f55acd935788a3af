//! Adoption: rebuild a worker's view from containerd (containers carry labels, tasks tell whether they
//! run) and from the pinned namespaces on disk, so an agent restart restarts nothing and keeps the IP.

use std::collections::HashMap;

use super::state::{ContainerState, Terminated, exit_reason};
use super::worker::Worker;
use crate::images::PullPolicy;
use crate::runtime::labels;
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
        let mut latest: HashMap<String, ContainerRecord> = HashMap::new();
        for rec in records {
            if self.labels_ns_name.is_none() {
                self.labels_ns_name =
                    Some((rec.meta.pod_namespace.clone(), rec.meta.pod_name.clone()));
            }
            let name = rec.meta.container_name.clone();
            match latest.get(&name) {
                Some(cur) if cur.meta.attempt >= rec.meta.attempt => {
                    self.ctx.runtime.remove(&rec.id).await;
                }
                Some(cur) => {
                    let old = cur.id.clone();
                    latest.insert(name, rec);
                    self.ctx.runtime.remove(&old).await;
                }
                None => {
                    latest.insert(name, rec);
                }
            }
        }
        for (name, rec) in latest {
            if let Some(st) = self.adopt(rec).await {
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
                self.ctx.runtime.reattach_logs(&rec.meta, log);
            }
            Some(TaskStatus::Stopped) => {
                st.running = Some(super::state::Running {
                    id: rec.id.clone(),
                    started_at,
                });
                self.pending_exits.push((rec.id.clone(), 0, None));
            }
            _ => {
                if let Some(code) = rec
                    .labels
                    .get(labels::EXIT_CODE)
                    .and_then(|c| c.parse::<i32>().ok())
                {
                    let finished = rec
                        .labels
                        .get(labels::FINISHED_AT)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(started_at);
                    let reason = rec
                        .labels
                        .get(labels::EXIT_REASON)
                        .cloned()
                        .unwrap_or_else(|| exit_reason(code, false).into());
                    st.terminated = Some(Terminated {
                        container_id: rec.id.clone(),
                        exit_code: code,
                        reason,
                        started_at: Some(started_at),
                        finished_at: finished,
                        message: None,
                    });
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

    fn spec_image(&self, name: &str) -> Option<String> {
        let spec = self.pod.as_ref()?.spec.as_ref()?;
        spec.init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .find(|c| c.name == name)
            .and_then(|c| c.image.clone())
    }
}
