//! GC: synthesized DEL for stale cached attachments, then GC to the plugins (spec 1.1); and the
//! agent's periodic GC with the attachments of the pods it has pinned.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use skiff_cni::spec::{CniResult, Command, Version};

use super::{Attachment, CniError, CniRuntime, cache};

impl CniRuntime {
    /// Tear down every cached attachment that is not in `valid` (synthesized DEL), then send GC with
    /// `cni.dev/valid-attachments` to the plugins (spec 1.1, unless the list has disableGC).
    /// Continues past errors and reports them all.
    pub async fn gc(&self, valid: &[Attachment]) -> Result<(), CniError> {
        let _gc = self.locks.exclusive().await;
        self.gc_locked(valid).await
    }

    /// GC with the live attachments of the agent: one `eth0` per pod sandbox pinned under
    /// `pods_dir` (`<run-dir>/pods/<pod-uid>`). The list is taken while GC holds its exclusive
    /// lock, so an ADD that completes just before cannot be mistaken for a stale one (a pod's
    /// sandbox is pinned before its ADD and unpinned after its DEL).
    pub async fn gc_live(&self, pods_dir: &Path) -> Result<(), CniError> {
        let _gc = self.locks.exclusive().await;
        let valid = live_attachments(pods_dir).await;
        self.gc_locked(&valid).await
    }

    /// [`gc_live`](Self::gc_live) now and then every `period`, logging failures; runs until the
    /// task is dropped.
    pub async fn gc_loop(self: Arc<Self>, pods_dir: PathBuf, period: Duration) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.gc_live(&pods_dir).await {
                Ok(()) => tracing::debug!("CNI GC done"),
                Err(CniError::NoConfig(_)) => {}
                Err(e) => tracing::warn!(error = %e, "CNI GC failed"),
            }
        }
    }

    async fn gc_locked(&self, valid: &[Attachment]) -> Result<(), CniError> {
        let mut errors = Vec::new();
        for (path, entry) in cache::all(&self.cache_dir).await {
            if valid
                .iter()
                .any(|v| v.container_id == entry.container_id && v.ifname == entry.if_name)
            {
                continue;
            }
            let att = entry.attachment();
            let res = match self.network_of(&entry).await {
                Some(net) => {
                    let prev = CniResult::from_value(entry.result.clone())
                        .ok()
                        .and_then(|r| r.to_json(net.version).ok());
                    self.run_del(&net, &att, prev.as_ref(), &entry.capability_args)
                        .await
                }
                None => Ok(()),
            };
            match res {
                Ok(()) => {
                    if let Err(e) = cache::remove(&path).await {
                        errors.push(e);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        match self.load().await {
            Ok(net) if net.version >= Version::V1_1 && !net.list.disable_gc => {
                let list: Vec<Value> = valid
                    .iter()
                    .map(|a| serde_json::json!({"containerID": a.container_id, "ifname": a.ifname}))
                    .collect();
                for (i, plugin) in net.list.plugin_types().into_iter().enumerate() {
                    let mut stdin = match self.stdin_map(&net, i, None, &Map::new()) {
                        Ok(m) => m,
                        Err(e) => {
                            errors.push(e);
                            continue;
                        }
                    };
                    stdin.insert(
                        "cni.dev/valid-attachments".into(),
                        Value::Array(list.clone()),
                    );
                    stdin.insert("cni.dev/attachments".into(), Value::Array(list.clone()));
                    if let Err(e) = self
                        .exec(
                            plugin,
                            Command::Gc,
                            &Attachment::none(),
                            &Value::Object(stdin),
                        )
                        .await
                    {
                        errors.push(e);
                    }
                }
            }
            Ok(_) | Err(CniError::NoConfig(_)) => {}
            Err(e) => errors.push(e),
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(CniError::Multiple(errors)),
        }
    }
}

/// How often the agent runs CNI GC.
pub const GC_PERIOD: Duration = Duration::from_secs(300);

/// `(uid, eth0)` for every pod sandbox directory under `pods_dir`.
pub async fn live_attachments(pods_dir: &Path) -> Vec<Attachment> {
    let mut out = Vec::new();
    let Ok(mut rd) = tokio::fs::read_dir(pods_dir).await else {
        return out;
    };
    while let Ok(Some(e)) = rd.next_entry().await {
        if !e.file_type().await.is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if let Some(uid) = e.file_name().to_str() {
            out.push(Attachment {
                container_id: uid.to_string(),
                netns: e.path().join("ns").join("net"),
                ifname: "eth0".into(),
                ..Attachment::default()
            });
        }
    }
    out
}
