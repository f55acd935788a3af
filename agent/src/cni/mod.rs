//! The agent's CNI *runtime* (what libcni is in Go): loads the network config list, negotiates the
//! spec version, runs the plugin chain with prevResult (ADD in order, DEL in reverse), caches the
//! final result in libcni's `cniCacheV1` layout, runs DEL from the cache even after a failed ADD or
//! a config change, serializes operations per container and runs GC exclusively.
//!
//! It drives any CNI plugin: skiff-cni, or Debian's reference `bridge` + `host-local` + `loopback`.

mod cache;
mod conflist;
mod error;
mod exec;
mod gc;
mod locks;
mod network;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use skiff_cni::spec::{self, CniResult, Command, Version};

pub use conflist::DEFAULT_CONFLIST;
pub use error::CniError;
pub use gc::{GC_PERIOD, live_attachments};
use network::Network;

/// How long one plugin invocation may take before it is killed.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// One network attachment of a pod: CNI's (container id, netns, ifname) plus CNI_ARGS and the
/// capability arguments the runtime offers (`portMappings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Attachment {
    pub container_id: String,
    pub netns: PathBuf,
    pub ifname: String,
    pub args: Vec<(String, String)>,
    /// Host ports, passed as `runtimeConfig.portMappings` to plugins that declare the capability.
    pub port_mappings: Vec<PortMapping>,
}

/// A `portMappings` capability entry (CNI CONVENTIONS.md), from a container port with `hostPort`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    #[serde(rename = "hostPort")]
    pub host_port: u16,
    #[serde(rename = "containerPort")]
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp` (lower case, as CRI runtimes pass it).
    pub protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// The host ports of a pod: every container port with a `hostPort`, as the kubelet hands them to CNI.
pub fn port_mappings(pod: &Pod) -> Vec<PortMapping> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let mut out: Vec<PortMapping> = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let (Some(host), Ok(container)) = (p.host_port, u16::try_from(p.container_port)) else {
                continue;
            };
            let Ok(host) = u16::try_from(host) else {
                continue;
            };
            if host == 0 || container == 0 {
                continue;
            }
            let m = PortMapping {
                host_port: host,
                container_port: container,
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            };
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

impl Attachment {
    /// For the network-wide commands (GC, STATUS, VERSION), which take no attachment.
    pub(crate) fn none() -> Attachment {
        Attachment::default()
    }

    /// The capability arguments this attachment offers (`runtimeConfig` is their intersection
    /// with what each plugin declares).
    pub(crate) fn capability_args(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if !self.port_mappings.is_empty()
            && let Ok(v) = serde_json::to_value(&self.port_mappings)
        {
            m.insert("portMappings".into(), v);
        }
        m
    }
}

/// What the agent needs from an ADD result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetwork {
    /// `ips[].address` of the final result, in order, without prefix lengths; the first is the pod
    /// IP (docs/contracts.md).
    pub ips: Vec<IpAddr>,
    /// The network (conflist `name`) the result belongs to.
    pub network: String,
    /// The final plugin's full result.
    pub result: CniResult,
}

impl PodNetwork {
    fn from_result(network: &str, result: CniResult) -> PodNetwork {
        let ips = result.ips.iter().map(|ip| ip.address.addr()).collect();
        PodNetwork {
            ips,
            network: network.to_string(),
            result,
        }
    }
}

/// The CNI runtime. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct CniRuntime {
    conf_dir: PathBuf,
    bin_dirs: Vec<PathBuf>,
    cache_dir: PathBuf,
    timeout: Duration,
    locks: locks::Locks,
    versions: Mutex<HashMap<PathBuf, spec::VersionInfo>>,
}

impl CniRuntime {
    pub fn new(conf_dir: PathBuf, bin_dirs: Vec<PathBuf>, cache_dir: PathBuf) -> Self {
        CniRuntime {
            conf_dir,
            bin_dirs,
            cache_dir,
            timeout: DEFAULT_PLUGIN_TIMEOUT,
            locks: locks::Locks::default(),
            versions: Mutex::new(HashMap::new()),
        }
    }

    /// Kill plugins that take longer than `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Write `10-skiff.conflist` (docs/contracts.md) unless a `*.conflist` already exists.
    pub fn ensure_default_conflist(
        &self,
        pod_cidr: &str,
        cluster_cidr: &str,
    ) -> Result<(), CniError> {
        conflist::ensure_default(&self.conf_dir, pod_cidr, cluster_cidr)
    }

    /// A loadable conflist exists and every plugin binary of its chain is found.
    pub fn ready(&self) -> Result<(), CniError> {
        let (path, raw) = conflist::first(&self.conf_dir)?;
        let list = conflist::parse(&path, &raw)?;
        list.negotiate(&[]).map_err(|source| CniError::Config {
            path: path.clone(),
            source,
        })?;
        for t in list.plugin_types() {
            self.find_plugin(t)?;
        }
        Ok(())
    }

    /// [`ready`](Self::ready), then (spec 1.1 lists) STATUS to every plugin of the chain: Ok when
    /// the network can take an ADD. Plugin errors carry code 50/51.
    pub async fn status(&self) -> Result<(), CniError> {
        self.ready()?;
        let net = self.load().await?;
        if net.version < Version::V1_1 {
            return Ok(());
        }
        for (i, plugin) in net.list.plugin_types().into_iter().enumerate() {
            let stdin = self.stdin(&net, i, None, &Map::new())?;
            self.exec(plugin, Command::Status, &Attachment::none(), &stdin)
                .await?;
        }
        Ok(())
    }

    /// ADD the attachment to the network: run the chain and cache the final result.
    pub async fn add(&self, att: &Attachment) -> Result<PodNetwork, CniError> {
        let _gc = self.locks.shared().await;
        let _c = self.locks.container(&att.container_id).await;
        let net = self.load().await?;
        let caps = att.capability_args();
        let mut prev: Option<Value> = None;
        for (i, plugin) in net.list.plugin_types().into_iter().enumerate() {
            let stdin = self.stdin(&net, i, prev.as_ref(), &caps)?;
            let out = self.exec(plugin, Command::Add, att, &stdin).await?;
            let result = CniResult::parse(&out).map_err(|source| CniError::BadResult {
                plugin: plugin.to_string(),
                command: "ADD".into(),
                source,
            })?;
            prev = Some(
                result
                    .to_json(net.version)
                    .map_err(|source| CniError::BadResult {
                        plugin: plugin.to_string(),
                        command: "ADD".into(),
                        source,
                    })?,
            );
        }
        let final_json = prev.unwrap_or(Value::Null);
        let result =
            CniResult::from_value(final_json.clone()).map_err(|source| CniError::BadResult {
                plugin: net.list.name.clone(),
                command: "ADD".into(),
                source,
            })?;
        let entry = cache::Entry::new(&net.list.name, &net.raw, att, final_json);
        cache::write(&self.cache_dir, &entry).await?;
        Ok(PodNetwork::from_result(&net.list.name, result))
    }

    /// CHECK the attachment against its cached ADD result (spec §2: lists of 0.4.0 and later, unless
    /// `disableCheck`). The chain runs in ADD order with the cached result as prevResult.
    pub async fn check(&self, att: &Attachment) -> Result<(), CniError> {
        let _gc = self.locks.shared().await;
        let _c = self.locks.container(&att.container_id).await;
        let entry = cache::find(&self.cache_dir, &att.container_id, &att.ifname)
            .await
            .into_iter()
            .map(|(_, e)| e)
            .find(|e| !e.result.is_null())
            .ok_or_else(|| CniError::NotAdded {
                container_id: att.container_id.clone(),
                ifname: att.ifname.clone(),
            })?;
        let net = match self.network_of(&entry).await {
            Some(net) => net,
            None => self.load().await?,
        };
        if net.version < Version::CHECK || net.list.disable_check {
            return Ok(());
        }
        let prev = CniResult::from_value(entry.result.clone())
            .and_then(|r| r.to_json(net.version))
            .map_err(|source| CniError::BadResult {
                plugin: net.list.name.clone(),
                command: "CHECK".into(),
                source,
            })?;
        for (i, plugin) in net.list.plugin_types().into_iter().enumerate() {
            let stdin = self.stdin(&net, i, Some(&prev), &entry.capability_args)?;
            self.exec(plugin, Command::Check, att, &stdin).await?;
        }
        Ok(())
    }

    /// DEL the attachment: with the cached config and result when there is a cache entry (so a
    /// changed conflist still tears down what ADD built), else with the current config and no
    /// prevResult (a failed ADD). Idempotent; the cache entry is removed afterwards.
    pub async fn del(&self, att: &Attachment) -> Result<(), CniError> {
        let _gc = self.locks.shared().await;
        let _c = self.locks.container(&att.container_id).await;
        self.del_locked(att).await
    }

    async fn del_locked(&self, att: &Attachment) -> Result<(), CniError> {
        let entries = cache::find(&self.cache_dir, &att.container_id, &att.ifname).await;
        if entries.is_empty() {
            let net = match self.load().await {
                Ok(net) => net,
                // Nothing was ever cached and there is no config: nothing can have been set up.
                Err(CniError::NoConfig(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            return self.run_del(&net, att, None, &att.capability_args()).await;
        }
        for (path, entry) in entries {
            // The capability args ADD ran with, so DEL removes what they set up (host ports).
            let mut caps = entry.capability_args.clone();
            if caps.is_empty() {
                caps = att.capability_args();
            }
            match self.network_of(&entry).await {
                Some(net) => {
                    let prev = CniResult::from_value(entry.result.clone())
                        .ok()
                        .and_then(|r| r.to_json(net.version).ok());
                    self.run_del(&net, att, prev.as_ref(), &caps).await?;
                }
                None => {
                    // An unreadable cached config: fall back to the current one, like libcni.
                    let net = self.load().await?;
                    self.run_del(&net, att, None, &caps).await?;
                }
            }
            cache::remove(&path).await?;
        }
        Ok(())
    }

    async fn run_del(
        &self,
        net: &Network,
        att: &Attachment,
        prev: Option<&Value>,
        caps: &Map<String, Value>,
    ) -> Result<(), CniError> {
        let types = net.list.plugin_types();
        for (i, plugin) in types.iter().enumerate().rev() {
            let stdin = self.stdin(net, i, prev, caps)?;
            self.exec(plugin, Command::Del, att, &stdin).await?;
        }
        Ok(())
    }

    /// The cached ADD result of the attachment (agent restart adoption).
    pub async fn cached(&self, att: &Attachment) -> Option<PodNetwork> {
        let entries = cache::find(&self.cache_dir, &att.container_id, &att.ifname).await;
        entries.into_iter().find_map(|(_, e)| {
            CniResult::from_value(e.result.clone())
                .ok()
                .map(|r| PodNetwork::from_result(&e.network_name, r))
        })
    }

    fn find_plugin(&self, plugin: &str) -> Result<PathBuf, CniError> {
        exec::find_plugin(&self.bin_dirs, plugin).ok_or_else(|| CniError::PluginNotFound {
            plugin: plugin.to_string(),
            dirs: self.bin_dirs.clone(),
        })
    }

    async fn exec(
        &self,
        plugin: &str,
        command: Command,
        att: &Attachment,
        stdin: &Value,
    ) -> Result<Vec<u8>, CniError> {
        let path = self.find_plugin(plugin)?;
        exec::run(&exec::Invocation {
            plugin: &path,
            command,
            attachment: att,
            bin_dirs: &self.bin_dirs,
            stdin,
            timeout: self.timeout,
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_from_the_pod_spec() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "ports": [
                    {"containerPort": 80, "hostPort": 8080},
                    {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
                    {"containerPort": 9000}
                ]},
                {"name": "b", "ports": [{"containerPort": 80, "hostPort": 8080}]}
            ]}
        }))
        .unwrap();
        let m = port_mappings(&pod);
        assert_eq!(
            m.len(),
            2,
            "no hostPort, no mapping; duplicates once: {m:?}"
        );
        assert_eq!(m[0].protocol, "tcp");
        assert_eq!(m[1].protocol, "udp");
        let att = Attachment {
            port_mappings: m,
            ..Attachment::default()
        };
        let caps = att.capability_args();
        assert_eq!(caps["portMappings"][1]["hostIP"], "127.0.0.1");
        assert_eq!(caps["portMappings"][0]["hostPort"], 8080);
        assert!(caps["portMappings"][0].get("hostIP").is_none());
        assert!(Attachment::default().capability_args().is_empty());
    }
}
