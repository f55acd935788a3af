//! Clean-up of local-path volume directories (docs/contracts.md, "Storage"): at start and every
//! [`PERIOD`] the storage dir is listed; a directory `pvc-<uid>_<ns>_<claim>` whose PersistentVolume
//! `pvc-<uid>` the API server says does not exist (404), and whose claim no pod of this node uses, is
//! removed. local-path-provisioner does the same with a helper pod when the volume is deleted; here the
//! node does it, so the API server never touches a node's disk.
//!
//! Decisions:
//! - Only a 404 removes: 200, 403 (another node's volume), or any error keeps the directory.
//! - Only entries that are directories themselves (not symlinks) and whose names have exactly that shape
//!   are considered, and they are removed through the directory entry, never through a path the API
//!   gave.
//! - "Uses" comes from the agent's own pods ([`InUse`], kept by the pod manager): every pod with a worker
//!   that is not Succeeded/Failed, by claim namespace and name. Nothing is removed before the pod manager
//!   has listed the node's pods once, nor while a pod whose spec is unknown (containers left from before a
//!   restart, being torn down) is around.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
use kube::api::Api;

/// How often the storage dir is looked at.
pub const PERIOD: Duration = Duration::from_secs(60);

/// A local-path directory name, `pvc-<claim uid>_<namespace>_<claim>`, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirName {
    pub uid: String,
    pub namespace: String,
    pub claim: String,
}

impl DirName {
    /// The provisioned PersistentVolume's name, `pvc-<uid>`.
    pub fn volume(&self) -> String {
        format!("pvc-{}", self.uid)
    }

    /// Parse a directory name; `None` for anything not of the provisioner's shape (a uid as the API server
    /// makes them, a DNS-1123 label namespace, a DNS-1123 subdomain claim name).
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("pvc-")?;
        let (uid, rest) = rest.split_once('_')?;
        let (namespace, claim) = rest.split_once('_')?;
        (is_uid(uid) && is_label(namespace) && is_subdomain(claim)).then(|| DirName {
            uid: uid.into(),
            namespace: namespace.into(),
            claim: claim.into(),
        })
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase hex.
fn is_uid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| {
            g.len() == n
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// DNS-1123 label: at most 63 of `[a-z0-9-]`, alphanumeric at both ends.
fn is_label(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| alnum(b) || b == b'-')
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum)
}

/// DNS-1123 subdomain: at most 253, dot-separated labels.
fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

#[derive(Debug, Default)]
struct State {
    synced: bool,
    /// Pod uid → (namespace, claim) of its claims; `None`: a pod whose spec the agent does not know.
    pods: HashMap<String, Option<BTreeSet<(String, String)>>>,
}

/// The claims the pods of this node use, kept by the pod manager for the clean-up.
#[derive(Debug, Clone, Default)]
pub struct InUse {
    state: Arc<Mutex<State>>,
    synced: Arc<tokio::sync::Notify>,
}

impl InUse {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pod of this node, as last seen; Succeeded/Failed pods use nothing any more.
    pub fn pod(&self, uid: &str, pod: &Pod) {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let claims = if matches!(phase, Some("Succeeded" | "Failed")) {
            BTreeSet::new()
        } else {
            super::claims::claim_volumes(pod)
                .into_iter()
                .map(|(_, claim)| (ns.clone(), claim))
                .collect()
        };
        self.lock().pods.insert(uid.to_string(), Some(claims));
    }

    /// A pod known only by its containers (torn down without its spec): nothing is removed meanwhile.
    pub fn unknown(&self, uid: &str) {
        self.lock().pods.insert(uid.to_string(), None);
    }

    /// The pod's worker is gone.
    pub fn remove(&self, uid: &str) {
        self.lock().pods.remove(uid);
    }

    /// The pod manager has listed this node's pods (and found leftover containers) once.
    pub fn mark_synced(&self) {
        self.lock().synced = true;
        self.synced.notify_waiters();
    }

    async fn wait_synced(&self) {
        loop {
            let notified = self.synced.notified();
            if self.lock().synced {
                return;
            }
            notified.await;
        }
    }

    /// The (namespace, claim) pairs in use; `None` when that cannot be told yet.
    pub fn claims(&self) -> Option<BTreeSet<(String, String)>> {
        let st = self.lock();
        if !st.synced {
            return None;
        }
        let mut out = BTreeSet::new();
        for claims in st.pods.values() {
            out.extend(claims.as_ref()?.iter().cloned());
        }
        Some(out)
    }
}

/// What the API server says of a PersistentVolume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// 404.
    Gone,
    /// Anything else: present, forbidden, or no answer.
    Keep(String),
}

/// GET the PersistentVolume `name` with the node's credentials.
pub async fn lookup(client: &kube::Client, name: &str) -> Lookup {
    let api: Api<PersistentVolume> = Api::all(client.clone());
    match api.get(name).await {
        Ok(_) => Lookup::Keep("exists".into()),
        Err(kube::Error::Api(s)) if is_gone(&s, name) => Lookup::Gone,
        Err(e) => Lookup::Keep(e.to_string()),
    }
}

/// A 404 about this very volume (its name in the Status details), not one from something that does not
/// serve PersistentVolumes at all (`the server could not find the requested resource`).
pub fn is_gone(s: &kube::core::Status, name: &str) -> bool {
    s.is_not_found() && s.details.as_ref().is_some_and(|d| d.name == name)
}

/// One pass over `storage_dir`: the directories removed. `lookup` answers for a volume name.
pub async fn sweep<F, Fut>(storage_dir: &Path, in_use: &InUse, lookup: F) -> Vec<PathBuf>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Lookup>,
{
    let mut removed = Vec::new();
    let mut entries = match tokio::fs::read_dir(storage_dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return removed,
        Err(e) => {
            tracing::warn!(dir = %storage_dir.display(), error = %e, "cannot list the storage dir");
            return removed;
        }
    };
    let mut candidates = Vec::new();
    loop {
        match entries.next_entry().await {
            Ok(Some(entry)) => {
                // The entry's own type: a symlink is never followed, nor removed.
                let is_dir = entry.file_type().await.is_ok_and(|t| t.is_dir());
                let name = entry.file_name();
                if let (true, Some(parsed)) = (is_dir, name.to_str().and_then(DirName::parse)) {
                    candidates.push((storage_dir.join(&name), parsed));
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(dir = %storage_dir.display(), error = %e, "cannot list the storage dir");
                return removed;
            }
        }
    }
    for (path, parsed) in candidates {
        // Asked for every candidate, just before its GET: a pod may have arrived meanwhile.
        let Some(used) = in_use.claims() else {
            tracing::debug!("pods of this node not known yet; storage clean-up skipped");
            return removed;
        };
        if used.contains(&(parsed.namespace.clone(), parsed.claim.clone())) {
            continue;
        }
        let volume = parsed.volume();
        match lookup(volume.clone()).await {
            Lookup::Gone => {}
            Lookup::Keep(why) => {
                tracing::trace!(%volume, %why, "volume directory kept");
                continue;
            }
        }
        if in_use
            .claims()
            .is_none_or(|u| u.contains(&(parsed.namespace.clone(), parsed.claim.clone())))
        {
            continue;
        }
        let target = path.clone();
        let res = tokio::task::spawn_blocking(move || {
            // Still a directory of its own (not swapped for a symlink since it was listed).
            match std::fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&target),
                Ok(_) => Err(std::io::Error::other("no longer a directory")),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        match res {
            Ok(()) => {
                tracing::info!(dir = %path.display(), %volume, "removed the directory of a deleted PersistentVolume");
                removed.push(path);
            }
            Err(e) => {
                tracing::warn!(dir = %path.display(), %volume, error = %e, "cannot remove the directory of a deleted PersistentVolume");
            }
        }
    }
    removed
}

/// Sweep the storage dir once the pod manager knows this node's pods, then every `period`.
pub async fn run(client: kube::Client, storage_dir: PathBuf, in_use: InUse, period: Duration) {
    in_use.wait_synced().await;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let client = &client;
        sweep(&storage_dir, &in_use, |name| async move {
            lookup(client, &name).await
        })
        .await;
    }
}

#[cfg(test)]
#[path = "storage_gc_tests.rs"]
mod tests;
