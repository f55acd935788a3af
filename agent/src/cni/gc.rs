//! GC: synthesized DEL for stale cached attachments, then GC to the plugins (spec 1.1).

use serde_json::Value;
use skiff_cni::spec::{CniResult, Command, Version};

use super::{Attachment, CniError, CniRuntime, cache};

impl CniRuntime {
    /// Tear down every cached attachment that is not in `valid` (synthesized DEL), then send GC with
    /// `cni.dev/valid-attachments` to the plugins (spec 1.1, unless the list has disableGC).
    /// Continues past errors and reports them all.
    pub async fn gc(&self, valid: &[Attachment]) -> Result<(), CniError> {
        let _gc = self.locks.exclusive().await;
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
                    self.run_del(&net, &att, prev.as_ref()).await
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
                    let mut stdin = match self.stdin_map(&net, i, None) {
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
