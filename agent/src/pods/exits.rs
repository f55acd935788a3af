//! Container exits: reaping the task, recording how the container ended (also in containerd labels,
//! for adoption), the termination message, and restart scheduling with back-off.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::state::Waiting;
use super::status;
use super::worker::Worker;
use crate::runtime::TaskState;
use crate::runtime::labels::{self, ContainerKind};

impl Worker {
    /// A task ended: reap it, remember how it ended (in containerd too), schedule a restart if the
    /// restart policy wants one.
    pub(crate) async fn on_exit(
        &mut self,
        id: &str,
        code: u32,
        at: Option<jiff::Timestamp>,
        schedule: bool,
    ) {
        let Some(name) = self
            .containers
            .iter()
            .find(|(_, c)| c.running.as_ref().is_some_and(|r| r.id == id))
            .map(|(n, _)| n.clone())
        else {
            return;
        };
        // The OOM event can arrive after the exit (or not at all when the stream was down): the cgroup's
        // own counter says whether the kernel killed something in it. runc removes the cgroup on delete.
        let (uid, cid) = (self.uid.clone(), id.to_string());
        let oom_kills =
            tokio::task::spawn_blocking(move || crate::runtime::cgroups::oom_kills(&uid, &cid))
                .await
                .ok()
                .flatten();
        if oom_kills.is_some_and(|n| n > 0)
            && let Some(st) = self.containers.get_mut(&name)
        {
            st.oom = true;
        }
        let (code, at) = match self.ctx.runtime.delete_task(id).await {
            Ok(Some((c, t))) => (c, t.or(at)),
            Ok(None) => (code, at),
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "cannot delete exited task");
                (code, at)
            }
        };
        let finished = at.unwrap_or_else(jiff::Timestamp::now);
        let message = self.termination_message(&name, id).await;
        let pod = self.pod.clone();
        let policy = pod
            .as_ref()
            .and_then(|p| p.spec.as_ref())
            .map(|s| status::restart_policy(s).to_string())
            .unwrap_or_default();
        let Some(st) = self.containers.get_mut(&name) else {
            return;
        };
        let exit_code = i32::try_from(code).unwrap_or(i32::MAX);
        if st.exited(exit_code, finished).is_none() {
            return;
        }
        if let Some(t) = st.terminated.as_mut() {
            t.message = message;
        }
        let Some(t) = st.terminated.clone() else {
            return;
        };
        tracing::info!(container = %id, exit_code, reason = %t.reason, "container exited");
        let lived = t
            .started_at
            .map(|s| finished.duration_since(s).unsigned_abs())
            .unwrap_or_default();
        let mut record = HashMap::from([
            (labels::EXIT_CODE.to_string(), exit_code.to_string()),
            (labels::EXIT_REASON.to_string(), t.reason.clone()),
            (labels::FINISHED_AT.to_string(), finished.to_string()),
        ]);
        if let Some(s) = t.started_at {
            record.insert(labels::STARTED_AT.to_string(), s.to_string());
        }
        if let Err(e) = self.ctx.runtime.set_labels(id, record).await {
            tracing::debug!(container = %id, error = %e, "cannot record exit in container labels");
        }
        if !schedule {
            return;
        }
        let restart = match (st.kind, policy.as_str()) {
            (_, "Never") => false,
            // Ephemeral containers are never restarted.
            (ContainerKind::Ephemeral, _) => false,
            (ContainerKind::Init, _) => exit_code != 0,
            (ContainerKind::App, "OnFailure") => exit_code != 0,
            (ContainerKind::App, _) => true,
        };
        if restart {
            let delay = st.backoff.next_delay(lived);
            st.next_start = Some(Instant::now() + delay);
            if !delay.is_zero()
                && let Some(p) = &pod
            {
                let (ns, pname) = (
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default(),
                );
                st.waiting = Some(Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {}s restarting failed container={} pod={pname}_{ns}({})",
                        delay.as_secs(),
                        st.name,
                        self.uid
                    )),
                });
                self.ctx.recorder.warning(
                    p,
                    Some(super::recorder::container_field(st.kind, &st.name)),
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {pname}_{ns}({})",
                        st.name, self.uid
                    ),
                );
            }
        }
    }

    /// The container's termination-message file (`/dev/termination-log`), at most 4096 bytes like the kubelet.
    async fn termination_message(&self, name: &str, id: &str) -> Option<String> {
        let path = self.pod_dir().join("containers").join(name).join(id);
        let data = tokio::fs::read(&path).await.ok()?;
        let data = &data[..data.len().min(4096)];
        let text = String::from_utf8_lossy(data).into_owned();
        if text.is_empty() { None } else { Some(text) }
    }

    /// The relist safety net: the state of every task this worker believes is running, from the relist's
    /// task list where it has the task, else asked of containerd.
    pub(crate) async fn check_tasks(&mut self, listed: Option<&Relist>) {
        let running: Vec<String> = self
            .containers
            .values()
            .filter_map(|c| c.running.as_ref().map(|r| r.id.clone()))
            .collect();
        for id in running {
            let state = match listed.and_then(|l| l.get(&id)) {
                Some(t) => Ok(Some(t.clone())),
                None => self.ctx.runtime.task_state(&id).await,
            };
            match state {
                Ok(Some(t)) if t.status == crate::runtime::TaskStatus::Stopped => {
                    self.on_exit(&id, t.exit_status, t.exited_at, true).await;
                }
                Ok(None) => {
                    tracing::warn!(container = %id, "task vanished");
                    self.on_exit(&id, 137, None, true).await;
                }
                Ok(Some(_)) => {}
                Err(e) => tracing::debug!(container = %id, error = %e, "relist failed"),
            }
        }
    }
}

/// The tasks containerd listed at one relist, shared by every worker: one `Tasks.List` for the node instead
/// of one `Tasks.Get` per running container (with 100 idle pods those calls, and their allocations, were
/// most of the agent's work at each relist).
#[derive(Debug, Clone, Default)]
pub struct Relist(Arc<HashMap<String, TaskState>>);

impl Relist {
    pub fn new(tasks: Vec<TaskState>) -> Self {
        Self(Arc::new(
            tasks.into_iter().map(|t| (t.id.clone(), t)).collect(),
        ))
    }

    /// The listed task of a container. `None` when the list has none: the container started after the
    /// list was taken, or its task is gone; the worker then asks containerd about that one.
    pub fn get(&self, id: &str) -> Option<&TaskState> {
        self.0.get(id)
    }

    /// Whether some listed task belongs to no pod that `known` accepts (by the pod UID its container id
    /// starts with).
    pub fn has_unowned(&self, known: impl Fn(&str) -> bool) -> bool {
        self.0.keys().any(|id| !known(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::TaskStatus;

    fn task(id: &str, status: TaskStatus, exit_status: u32) -> TaskState {
        TaskState {
            id: id.into(),
            status,
            pid: 0,
            exit_status,
            exited_at: None,
        }
    }

    #[test]
    fn relist_finds_listed_tasks_only() {
        let l = Relist::new(vec![
            task("u1-a-0", TaskStatus::Running, 0),
            task("u1-b-0", TaskStatus::Stopped, 3),
        ]);
        assert_eq!(l.get("u1-a-0").map(|t| t.status), Some(TaskStatus::Running));
        let b = l.get("u1-b-0");
        assert_eq!(
            b.map(|t| (t.status, t.exit_status)),
            Some((TaskStatus::Stopped, 3))
        );
        // A later attempt (a new id) is not in an older list: the worker asks containerd.
        assert!(l.get("u1-a-1").is_none());
        assert!(Relist::default().get("u1-a-0").is_none());
    }

    #[test]
    fn relist_names_tasks_of_unknown_pods() {
        let l = Relist::new(vec![
            task("u1-a-0", TaskStatus::Running, 0),
            task("u2-b-0", TaskStatus::Running, 0),
        ]);
        let known = |uids: &'static [&'static str]| {
            move |id: &str| uids.iter().any(|u| crate::pods::owns(u, id))
        };
        assert!(!l.has_unowned(known(&["u1", "u2"])));
        assert!(l.has_unowned(known(&["u1"])));
        assert!(!Relist::default().has_unowned(known(&[])));
    }
}
