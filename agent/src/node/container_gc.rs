//! Dead-container garbage collection, as the kubelet's container GC does it when the eviction manager asks
//! it to free disk (`DeleteAllUnusedContainers`: the runtime's `GarbageCollect` with the default policy — no
//! minimum age, one dead container per container of a pod, no total limit — and `evictNonDeletedPods`):
//!
//! - every dead container of a pod that is gone from the API or has finished (phase Succeeded/Failed) is
//!   removed;
//! - of a pod that still runs, the most recent dead instance of each container is kept (`lastState` and
//!   `kubectl logs --previous` read it) and older ones are removed;
//! - a removed container loses its task, record, snapshot, `/var/log/containers` link and log files; the
//!   log directories of pods gone from the API are removed too (`evictPodLogsDirectories`).
//!
//! "Dead" means no task runs: the task stopped, or there is none. Containers, tasks and log directories are
//! listed before the pods, so a container whose pod is missing from that later list belongs to a pod that
//! is really gone (a pod is in the API before the agent creates anything for it).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use crate::runtime::labels::ContainerMeta;
use crate::runtime::{Runtime, TaskStatus, log_files, logs};

/// What became of a container's pod, for the GC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    /// In the API and not finished: keep the newest dead instance of each container.
    Live,
    /// Phase Succeeded or Failed: it never starts a container again.
    Finished,
    /// Not in the API any more.
    Gone,
}

/// The state of each pod listed, by UID; pods not listed are [`PodState::Gone`].
pub fn pod_states(pods: &[Pod]) -> HashMap<String, PodState> {
    pods.iter()
        .filter_map(|p| {
            let uid = p.metadata.uid.clone()?;
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            let state = if matches!(phase, Some("Succeeded") | Some("Failed")) {
                PodState::Finished
            } else {
                PodState::Live
            };
            Some((uid, state))
        })
        .collect()
}

/// A container with no running task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dead {
    pub id: String,
    pub meta: ContainerMeta,
    pub created_at: Option<jiff::Timestamp>,
}

/// The dead containers to remove (the kubelet's `evictContainers` with one container kept per container
/// name of a live pod), newest of each kept by attempt, then creation time. Sorted by id.
pub fn select(dead: Vec<Dead>, states: &HashMap<String, PodState>) -> Vec<Dead> {
    let mut units: HashMap<(String, String), Vec<Dead>> = HashMap::new();
    for d in dead {
        units
            .entry((d.meta.pod_uid.clone(), d.meta.container_name.clone()))
            .or_default()
            .push(d);
    }
    let mut out = Vec::new();
    for ((uid, _), mut unit) in units {
        let keep = match states.get(&uid).copied().unwrap_or(PodState::Gone) {
            PodState::Live => 1,
            PodState::Finished | PodState::Gone => 0,
        };
        unit.sort_by(|a, b| {
            b.meta
                .attempt
                .cmp(&a.meta.attempt)
                .then(b.created_at.cmp(&a.created_at))
        });
        out.extend(unit.into_iter().skip(keep));
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// What the GC saw before the pods were listed.
#[derive(Debug, Default)]
pub struct Snapshot {
    dead: Vec<Dead>,
    /// Pod log directories (`<ns>_<pod>_<uid>`) by pod UID.
    log_dirs: Vec<(String, PathBuf)>,
}

/// What one collection removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub containers: Vec<String>,
    /// Bytes of the log files removed.
    pub log_bytes: u64,
}

pub struct ContainerGc {
    runtime: Runtime,
    pod_log_dir: PathBuf,
}

impl ContainerGc {
    pub fn new(runtime: Runtime, pod_log_dir: PathBuf) -> Self {
        Self {
            runtime,
            pod_log_dir,
        }
    }

    /// List containers, tasks and pod log directories (before the caller lists the pods).
    pub async fn snapshot(&self) -> Result<Snapshot, String> {
        let records = self
            .runtime
            .list_containers(None)
            .await
            .map_err(|e| e.to_string())?;
        let tasks = self
            .runtime
            .task_statuses()
            .await
            .map_err(|e| e.to_string())?;
        let dead = records
            .into_iter()
            .filter(|r| matches!(tasks.get(&r.id), None | Some(TaskStatus::Stopped)))
            .map(|r| Dead {
                id: r.id,
                meta: r.meta,
                created_at: r.created_at,
            })
            .collect();
        let dir = self.pod_log_dir.clone();
        let log_dirs = tokio::task::spawn_blocking(move || pod_log_dirs(&dir))
            .await
            .unwrap_or_default();
        Ok(Snapshot { dead, log_dirs })
    }

    /// Remove what [`select`] picks given the pods listed after `snap`, then the log directories of pods
    /// that are gone. Errors are logged and the collection goes on.
    pub async fn collect(&self, snap: Snapshot, pods: &[Pod]) -> Collected {
        let states = pod_states(pods);
        let mut out = Collected::default();
        for d in select(snap.dead, &states) {
            self.runtime.remove(&d.id).await;
            let log = logs::log_path(
                &self.pod_log_dir,
                &d.meta.pod_namespace,
                &d.meta.pod_name,
                &d.meta.pod_uid,
                &d.meta.container_name,
                d.meta.attempt,
            );
            out.log_bytes += tokio::task::spawn_blocking(move || remove_log_files(&log))
                .await
                .unwrap_or(0);
            out.containers.push(d.id);
        }
        let gone: HashSet<String> = snap
            .log_dirs
            .into_iter()
            .filter(|(uid, _)| !states.contains_key(uid))
            .map(|(uid, _)| uid)
            .collect();
        for uid in gone {
            let dir = self.pod_log_dir.clone();
            let errors = tokio::task::spawn_blocking(move || logs::remove_pod_logs(&dir, &uid))
                .await
                .unwrap_or_default();
            for e in errors {
                tracing::warn!(error = %e, "container GC: cannot remove a pod's logs");
            }
        }
        out
    }
}

/// `(uid, path)` of each pod log directory (`<ns>_<pod>_<uid>`; neither part can hold `_`).
fn pod_log_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let (_, uid) = name.rsplit_once('_')?;
            Some((uid.to_string(), e.path()))
        })
        .collect()
}

/// Remove a container's log file and its rotated files (`<n>.log.<stamp>`); the bytes they held.
fn remove_log_files(log: &Path) -> u64 {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name().and_then(|n| n.to_str())) else {
        return 0;
    };
    let mut freed = 0;
    for f in std::iter::once(log.to_path_buf()).chain(log_files::rotated_files(dir, name)) {
        let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        match std::fs::remove_file(&f) {
            Ok(()) => freed += size,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(log = %f.display(), error = %e, "container GC: cannot remove a log")
            }
        }
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::labels::ContainerKind;
    use k8s_openapi::api::core::v1::PodStatus;

    fn dead(uid: &str, name: &str, attempt: u32, created: i64) -> Dead {
        Dead {
            id: format!("{uid}-{name}-{attempt}"),
            meta: ContainerMeta {
                pod_uid: uid.into(),
                pod_namespace: "ns".into(),
                pod_name: format!("pod-{uid}"),
                container_name: name.into(),
                attempt,
                kind: ContainerKind::App,
            },
            created_at: jiff::Timestamp::from_second(created).ok(),
        }
    }

    fn pod(uid: &str, phase: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.uid = Some(uid.into());
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        });
        p
    }

    #[test]
    fn picks_every_dead_container_but_the_newest_of_a_live_pod() {
        let states = pod_states(&[
            pod("live", "Running"),
            pod("done", "Succeeded"),
            pod("failed", "Failed"),
            pod("pending", "Pending"),
        ]);
        assert_eq!(states["done"], PodState::Finished);
        assert_eq!(states["pending"], PodState::Live);
        let picked = select(
            vec![
                dead("live", "app", 3, 300),
                dead("live", "app", 4, 400),
                dead("live", "app", 2, 200),
                dead("live", "sidecar", 0, 100),
                dead("done", "app", 0, 100),
                dead("done", "init", 0, 50),
                dead("failed", "app", 1, 100),
                dead("gone", "app", 5, 100),
                dead("pending", "init", 1, 100),
                dead("pending", "init", 0, 200),
            ],
            &states,
        );
        let ids: Vec<&str> = picked.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "done-app-0",
                "done-init-0",
                "failed-app-1",
                "gone-app-5",
                "live-app-2",
                "live-app-3",
                "pending-init-0",
            ],
            "a live pod keeps attempt 4 of app, its only sidecar, and the higher attempt of init"
        );
        // Same attempt: the one created last is kept.
        let picked = select(
            vec![dead("live", "app", 1, 100), {
                let mut d = dead("live", "app", 1, 200);
                d.id = "newer".into();
                d
            }],
            &states,
        );
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].created_at, jiff::Timestamp::from_second(100).ok());
        assert!(select(Vec::new(), &states).is_empty());
    }

    #[test]
    fn removes_a_log_with_its_rotations_and_lists_pod_log_dirs() {
        let root = std::env::temp_dir().join(format!("skiff-container-gc-{}", std::process::id()));
        let c = root.join("ns_web_uid-1").join("app");
        std::fs::create_dir_all(&c).expect("mkdir");
        std::fs::write(c.join("1.log"), [0u8; 10]).expect("write");
        std::fs::write(c.join("1.log.20240101-000000"), [0u8; 5]).expect("write");
        std::fs::write(c.join("2.log"), [0u8; 7]).expect("write");
        assert_eq!(remove_log_files(&c.join("1.log")), 15);
        assert!(c.join("2.log").exists(), "another attempt's log stays");
        assert!(!c.join("1.log.20240101-000000").exists());
        assert_eq!(remove_log_files(&c.join("1.log")), 0, "already gone");
        let dirs = pod_log_dirs(&root);
        assert_eq!(dirs, [("uid-1".to_string(), root.join("ns_web_uid-1"))]);
        assert!(pod_log_dirs(&root.join("missing")).is_empty());
        let _ = std::fs::remove_dir_all(&root);
    }
}
