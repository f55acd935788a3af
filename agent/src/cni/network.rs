//! Loading the network a command runs against, version negotiation, and per-plugin stdin.

use serde_json::{Map, Value};
use skiff_cni::spec::{self, NetworkConfigList, Version};

use super::{CniError, CniRuntime, cache, conflist, exec};

/// A loaded list with the version it will run at.
pub(crate) struct Network {
    pub list: NetworkConfigList,
    pub raw: Vec<u8>,
    pub version: Version,
}

impl CniRuntime {
    /// Load the current conflist and pick its version.
    pub(super) async fn load(&self) -> Result<Network, CniError> {
        let (path, raw) = conflist::first(&self.conf_dir)?;
        let list = conflist::parse(&path, &raw)?;
        let version = self.negotiate(&list).await.map_err(|e| match e {
            CniError::Config { source, .. } => CniError::Config { path, source },
            other => other,
        })?;
        Ok(Network { list, raw, version })
    }

    /// The highest common version; asks the plugins' VERSION only when the list offers a choice
    /// (`cniVersions`).
    pub(super) async fn negotiate(&self, list: &NetworkConfigList) -> Result<Version, CniError> {
        let infos = if list.version_candidates().count() > 1 {
            self.plugin_versions(list).await?
        } else {
            Vec::new()
        };
        list.negotiate(&infos).map_err(|source| CniError::Config {
            path: self.conf_dir.clone(),
            source,
        })
    }

    /// The network a cache entry was created with, at the version its ADD ran at.
    pub(super) async fn network_of(&self, entry: &cache::Entry) -> Option<Network> {
        let raw = entry.config_bytes()?;
        let list = NetworkConfigList::parse(&raw).ok()?;
        let used = entry
            .result
            .get("cniVersion")
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<Version>().ok())
            .filter(|v| {
                v.is_supported()
                    && list
                        .version_candidates()
                        .any(|c| c.parse::<Version>().ok() == Some(*v))
            });
        let version = match used {
            Some(v) => v,
            None => self.negotiate(&list).await.ok()?,
        };
        Some(Network { list, raw, version })
    }

    pub(super) async fn plugin_versions(
        &self,
        list: &NetworkConfigList,
    ) -> Result<Vec<spec::VersionInfo>, CniError> {
        let mut out = Vec::new();
        for t in list.plugin_types() {
            let path = self.find_plugin(t)?;
            let known = self
                .versions
                .lock()
                .ok()
                .and_then(|m| m.get(&path).cloned());
            let info = match known {
                Some(info) => info,
                None => {
                    let info = exec::version(&path, self.timeout).await?;
                    if let Ok(mut m) = self.versions.lock() {
                        m.insert(path.clone(), info.clone());
                    }
                    info
                }
            };
            out.push(info);
        }
        Ok(out)
    }

    pub(super) fn stdin_map(
        &self,
        net: &Network,
        index: usize,
        prev: Option<&Value>,
        caps: &Map<String, Value>,
    ) -> Result<Map<String, Value>, CniError> {
        net.list
            .plugin_config(index, net.version, prev, caps)
            .ok_or_else(|| CniError::Config {
                path: self.conf_dir.clone(),
                source: spec::Error::config(format!("plugin index {index} out of range")),
            })
    }

    pub(super) fn stdin(
        &self,
        net: &Network,
        index: usize,
        prev: Option<&Value>,
        caps: &Map<String, Value>,
    ) -> Result<Value, CniError> {
        self.stdin_map(net, index, prev, caps).map(Value::Object)
    }
}
