//! Find a pod's container from what the node has: containerd records (labels carry namespace, pod name,
//! container name and attempt) and, for containers already removed, the log directories on disk.

use std::path::{Path, PathBuf};

use super::ApiContext;
use crate::runtime::TaskStatus;

/// One container of one pod on this node.
#[derive(Debug, Clone)]
pub struct Located {
    pub uid: String,
    /// The newest attempt (restart count) seen.
    pub attempt: u32,
    /// The containerd container id of that attempt, when its record still exists.
    pub container_id: Option<String>,
    /// `<pod-log-dir>/<ns>_<pod>_<uid>/<container>`
    pub log_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Runtime(String),
}

/// The newest container named `container` of pod `ns/pod`.
pub async fn locate(
    ctx: &ApiContext,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<Located, LocateError> {
    for name in [ns, pod, container] {
        if !valid_name(name) {
            return Err(LocateError::NotFound(format!(
                "container \"{container}\" in pod \"{pod}\" is not available"
            )));
        }
    }
    let records = ctx
        .runtime
        .list_containers(None)
        .await
        .map_err(|e| LocateError::Runtime(e.to_string()))?;
    let newest = records
        .into_iter()
        .filter(|r| {
            r.meta.pod_namespace == ns
                && r.meta.pod_name == pod
                && r.meta.container_name == container
        })
        .max_by_key(|r| (r.created_at, r.meta.attempt));
    if let Some(r) = newest {
        let log_dir = ctx
            .pod_log_dir
            .join(format!("{ns}_{pod}_{}", r.meta.pod_uid))
            .join(container);
        return Ok(Located {
            uid: r.meta.pod_uid,
            attempt: r.meta.attempt,
            container_id: Some(r.id),
            log_dir,
        });
    }
    let (dir, pod_log_dir) = (ctx.pod_log_dir.clone(), ns.to_string());
    let (pod_s, container_s) = (pod.to_string(), container.to_string());
    let found = tokio::task::spawn_blocking(move || scan(&dir, &pod_log_dir, &pod_s, &container_s))
        .await
        .ok()
        .flatten();
    match found {
        Some((uid, log_dir, attempt)) => Ok(Located {
            uid,
            attempt,
            container_id: None,
            log_dir,
        }),
        None => Err(LocateError::NotFound(format!(
            "container \"{container}\" in pod \"{pod}\" is not available"
        ))),
    }
}

/// Kubernetes object names (DNS labels and subdomains): never a path component like `..`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// The newest `<ns>_<pod>_<uid>/<container>` directory with a log file: (uid, dir, highest attempt).
fn scan(
    pod_log_dir: &Path,
    ns: &str,
    pod: &str,
    container: &str,
) -> Option<(String, PathBuf, u32)> {
    let prefix = format!("{ns}_{pod}_");
    let mut best: Option<(std::time::SystemTime, String, PathBuf, u32)> = None;
    for entry in std::fs::read_dir(pod_log_dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(uid) = name.strip_prefix(&prefix) else {
            continue;
        };
        // Namespaces and pod names cannot hold '_', so the rest is the UID.
        if uid.contains('_') {
            continue;
        }
        let dir = entry.path().join(container);
        let Some(attempt) = attempts(&dir).into_iter().max() else {
            continue;
        };
        let mtime = std::fs::metadata(&dir)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        if best.as_ref().is_none_or(|b| mtime > b.0) {
            best = Some((mtime, uid.to_string(), dir, attempt));
        }
    }
    best.map(|(_, uid, dir, attempt)| (uid, dir, attempt))
}

/// Attempts that have a `<n>.log` file in `dir`.
pub fn attempts(dir: &Path) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".log")?
                .parse::<u32>()
                .ok()
        })
        .collect()
}

/// The newest container named `container` of pod `ns/pod` and the id of its running task, or the
/// error reply for a client (404 unknown container, 400 not running) — what exec and attach need.
pub async fn locate_running(
    ctx: &ApiContext,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<(Located, String), axum::response::Response> {
    use axum::http::StatusCode;
    let loc = match locate(ctx, ns, pod, container).await {
        Ok(l) => l,
        Err(LocateError::NotFound(_)) => {
            return Err(super::text_error(
                StatusCode::NOT_FOUND,
                format!("container not found (\"{container}\")"),
            ));
        }
        Err(e) => {
            return Err(super::text_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
            ));
        }
    };
    let running = match &loc.container_id {
        Some(id) => running(ctx, id).await,
        None => false,
    };
    match loc.container_id.clone().filter(|_| running) {
        Some(id) => Ok((loc, id)),
        None => Err(super::text_error(
            StatusCode::BAD_REQUEST,
            format!("container \"{container}\" in pod \"{pod}\" is not running"),
        )),
    }
}

/// Whether the container's task is still alive (its log may still grow).
pub async fn running(ctx: &ApiContext, container_id: &str) -> bool {
    match ctx.runtime.task_state(container_id).await {
        Ok(Some(t)) => matches!(
            t.status,
            TaskStatus::Running | TaskStatus::Created | TaskStatus::Paused
        ),
        Ok(None) => false,
        // containerd unreachable: keep following rather than cut the stream.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("kube-system"));
        assert!(valid_name("web-1.a"));
        for bad in ["", "..", ".", "a/b", "A", "a_b", "a b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn attempts_of_a_directory() {
        let dir = std::env::temp_dir().join(format!("skiff-attempts-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        for f in ["0.log", "2.log", "2.log.20261127-000000", "x.log"] {
            std::fs::write(dir.join(f), "").unwrap_or_default();
        }
        let mut a = attempts(&dir);
        a.sort_unstable();
        assert_eq!(a, vec![0, 2]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
