//! Stopping a pod: graceful stop (STOPSIGNAL, then SIGKILL after the grace period), container and
//! snapshot removal, CNI DEL, unpinning, pod directory removal, and finally the API delete.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};

use super::recorder::container_field;
use super::worker::{Msg, Worker};
use crate::runtime::TaskStatus;
use crate::runtime::labels::ContainerKind;

/// kubelet's `minimumGracePeriodInSeconds`.
pub const MIN_GRACE: Duration = Duration::from_secs(2);
const KILL_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(500);

pub fn grace_period(pod: Option<&Pod>) -> Duration {
    let Some(pod) = pod else { return MIN_GRACE };
    let secs = Some(pod)
        .and_then(|p| {
            p.metadata.deletion_grace_period_seconds.or(p
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds))
        })
        .unwrap_or(30)
        .max(0);
    Duration::from_secs(secs as u64).max(MIN_GRACE)
}

impl Worker {
    /// Stop every running container: signal, wait for exits (events, with polling as a net), SIGKILL late ones.
    async fn stop_all(&mut self, pod: Option<&Pod>) {
        let grace = grace_period(pod);
        let running: Vec<(String, String, u32, ContainerKind)> = self
            .containers
            .values()
            .filter_map(|c| {
                c.running
                    .as_ref()
                    .map(|r| (c.name.clone(), r.id.clone(), c.stop_signal, c.kind))
            })
            .collect();
        if running.is_empty() {
            return;
        }
        let grace = match pod {
            Some(p) => self.pre_stop_hooks(p, &running, grace).await,
            None => grace,
        };
        for (name, id, signal, kind) in &running {
            if let Some(p) = pod {
                self.ctx.recorder.normal(
                    p,
                    Some(container_field(*kind, name)),
                    "Killing",
                    format!("Stopping container {name}"),
                );
            }
            if let Err(e) = self.ctx.runtime.kill(id, *signal).await {
                tracing::warn!(container = %id, error = %e, "cannot signal container");
            }
        }
        let deadline = Instant::now() + grace;
        let mut killed = false;
        loop {
            if !self.any_running() {
                return;
            }
            if Instant::now() >= deadline && !killed {
                killed = true;
                for c in self.containers.values() {
                    if let Some(r) = &c.running {
                        tracing::info!(container = %r.id, "grace period over, sending SIGKILL");
                        let _ = self.ctx.runtime.kill(&r.id, 9).await;
                    }
                }
            }
            if killed && Instant::now() >= deadline + KILL_WAIT {
                tracing::warn!("containers did not exit after SIGKILL; removing them anyway");
                return;
            }
            tokio::select! {
                m = self.rx.recv() => match m {
                    Some(Msg::Exit { id, code, at }) => self.on_exit(&id, code, at, false).await,
                    Some(m) => self.apply(m),
                    None => {}
                },
                _ = tokio::time::sleep(POLL) => {
                    let ids: Vec<String> = self.containers.values().filter_map(|c| c.running.as_ref().map(|r| r.id.clone())).collect();
                    for id in ids {
                        match self.ctx.runtime.task_state(&id).await {
                            Ok(Some(t)) if t.status == TaskStatus::Stopped => self.on_exit(&id, t.exit_status, t.exited_at, false).await,
                            Ok(None) => self.on_exit(&id, 137, None, false).await,
                            _ => {}
                        }
                    }
                }
            }
        }
    }

    /// Run the running containers' preStop hooks at once within `grace`; returns the grace left for the signal.
    async fn pre_stop_hooks(
        &self,
        pod: &Pod,
        running: &[(String, String, u32, ContainerKind)],
        grace: Duration,
    ) -> Duration {
        let specs = pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        let runs = running.iter().filter_map(|(name, id, _, kind)| {
            let c = specs
                .iter()
                .find(|c| *kind == ContainerKind::App && &c.name == name)?;
            super::hooks::Hook::PreStop.handler(c)?;
            let start = Instant::now();
            Some(async move {
                super::hooks::pre_stop_reported(&self.ctx, pod, c, id, self.pod_ip, grace).await;
                start.elapsed()
            })
        });
        let took = futures::future::join_all(runs).await.into_iter().max();
        match took {
            Some(t) => super::hooks::remaining_grace(grace, t),
            None => grace,
        }
    }

    /// Stop one container without waiting: its preStop hook, then `signal`, then SIGKILL once `grace`
    /// is over. Its exit reaches the worker as usual.
    pub(crate) fn stop_in_background(
        &self,
        pod: &Arc<Pod>,
        name: &str,
        id: &str,
        signal: u32,
        grace: Duration,
    ) {
        let rt = self.ctx.runtime.clone();
        let id = id.to_string();
        let (ctx, pod, pod_ip) = (self.ctx.clone(), pod.clone(), self.pod_ip);
        let spec = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == name))
            .cloned();
        tokio::spawn(async move {
            let grace = match &spec {
                Some(c) => {
                    crate::pods::hooks::pre_stop_reported(&ctx, &pod, c, &id, pod_ip, grace).await
                }
                None => grace,
            };
            if let Err(e) = rt.kill(&id, signal).await {
                tracing::warn!(container = %id, error = %e, "cannot signal container");
            }
            let deadline = tokio::time::Instant::now() + grace;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(POLL).await;
                match rt.task_state(&id).await {
                    Ok(Some(t)) if t.status != TaskStatus::Stopped => {}
                    _ => return,
                }
            }
            tracing::info!(container = %id, "grace period over, sending SIGKILL");
            let _ = rt.kill(&id, 9).await;
        });
    }

    /// End a pod the agent failed itself (`activeDeadlineSeconds`, eviction, admission): stop every
    /// container once (preStop, stop signal, SIGKILL after the failure's grace period: the pod's, that of a
    /// soft eviction, none for a hard one)
    /// and restart none, report the pod Failed with the failure's reason, and give its network back once
    /// nothing runs.
    pub(crate) async fn end_failed(&mut self, pod: &Arc<Pod>) -> super::worker::Flow {
        self.probes.stop_all();
        if !self.failure_stopped {
            self.failure_stopped = true;
            // A hard eviction threshold kills at once, a soft one with its own grace period.
            let grace = match self.failure.as_ref().and_then(|f| f.grace) {
                Some(grace) => grace,
                None => grace_period(Some(pod)),
            };
            let running: Vec<(String, String, u32, ContainerKind)> = self
                .containers
                .values()
                .filter_map(|c| {
                    let r = c.running.as_ref()?;
                    Some((c.name.clone(), r.id.clone(), c.stop_signal, c.kind))
                })
                .collect();
            for (name, id, signal, kind) in running {
                self.ctx.recorder.normal(
                    pod,
                    Some(container_field(kind, &name)),
                    "Killing",
                    format!("Stopping container {name}"),
                );
                self.stop_in_background(pod, &name, &id, signal, grace);
            }
        }
        self.push_status(pod).await;
        if self.last_status.is_none() {
            return super::worker::Flow::Wake(Some(Instant::now() + Duration::from_secs(1)));
        }
        if !self.any_running() {
            self.release_network().await;
        }
        // Exits arrive as messages and bring the worker back.
        super::worker::Flow::Wake(None)
    }

    /// CNI DEL and unpin the namespaces (idempotent); the pod keeps its reported IP.
    pub(crate) async fn release_network(&mut self) {
        if self.network_released {
            return;
        }
        let att = self.attachment();
        let host_net = self.pod.as_deref().is_some_and(super::worker::host_network);
        if !host_net && let Err(e) = self.ctx.cni.del(&att).await {
            tracing::warn!(error = %e, "CNI DEL failed");
            return;
        }
        let dir = self.sandbox_dir();
        match tokio::task::spawn_blocking(move || crate::sandbox::unpin(&dir)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot unpin pod namespaces");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "unpin task failed");
                return;
            }
        }
        self.sandbox = None;
        self.network_released = true;
    }

    /// Everything the pod had on this node goes away; then the API object, if it asked for deletion.
    pub(crate) async fn teardown(&mut self, pod: Option<Arc<Pod>>) {
        let deleting = pod
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_some());
        tracing::info!(deleting, "tearing down pod");
        self.stop_all(pod.as_deref()).await;
        let mut ids: Vec<String> = self
            .containers
            .values()
            .flat_map(|c| {
                c.running
                    .as_ref()
                    .map(|r| r.id.clone())
                    .into_iter()
                    .chain(c.terminated.as_ref().map(|t| t.container_id.clone()))
                    .chain(c.previous.as_ref().map(|t| t.container_id.clone()))
            })
            .collect();
        if let Ok(recs) = self.ctx.runtime.list_containers(Some(&self.uid)).await {
            ids.extend(recs.into_iter().map(|r| r.id));
        }
        ids.sort();
        ids.dedup();
        for id in &ids {
            self.ctx.runtime.remove(id).await;
        }
        self.network_released = false;
        self.release_network().await;
        self.ctx.tokens.forget(&self.uid);
        let uid = self.uid.clone();
        let pod_dir = self.pod_dir();
        let io_dir = self.ctx.run_dir.join("io").join(&self.uid);
        let log_dir = self.ctx.pod_log_dir.clone();
        let cleanup = tokio::task::spawn_blocking(move || {
            let mut errors = crate::runtime::cgroups::remove_pod_cgroups(&uid);
            errors.extend(crate::runtime::logs::remove_pod_logs(&log_dir, &uid));
            errors.extend(crate::volumes::unmount_below(&pod_dir));
            for d in [pod_dir, io_dir] {
                match std::fs::remove_dir_all(&d) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => errors.push(format!("remove {}: {e}", d.display())),
                }
            }
            errors
        });
        if let Ok(errors) = cleanup.await {
            for e in errors {
                tracing::warn!(error = %e, "pod cleanup");
            }
        }
        if deleting && let Some(p) = pod {
            self.delete_from_api(&p).await;
        }
    }

    async fn delete_from_api(&self, pod: &Pod) {
        let (Some(name), Some(ns)) = (
            pod.metadata.name.as_deref(),
            pod.metadata.namespace.as_deref(),
        ) else {
            return;
        };
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => tracing::info!("pod deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => tracing::warn!(error = %e, "cannot delete pod"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn grace() {
        assert_eq!(grace_period(None), MIN_GRACE);
        assert_eq!(grace_period(Some(&Pod::default())), Duration::from_secs(30));
        let mut p = Pod {
            metadata: ObjectMeta {
                deletion_grace_period_seconds: Some(0),
                ..Default::default()
            },
            spec: Some(PodSpec {
                termination_grace_period_seconds: Some(10),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(grace_period(Some(&p)), MIN_GRACE);
        p.metadata.deletion_grace_period_seconds = None;
        assert_eq!(grace_period(Some(&p)), Duration::from_secs(10));
    }
}
