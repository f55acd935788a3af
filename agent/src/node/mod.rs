//! This node in the API: registration, readiness (runtime and network), status heartbeat, Lease.

pub mod container_gc;
pub mod image_gc;
pub mod info;
pub mod lease;
pub mod pressure;
pub mod reclaim;
pub mod reserved;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeCondition, NodeDaemonEndpoints, NodeStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::cni::CniRuntime;
use crate::runtime::Runtime;
use info::NodeFacts;

pub const STATUS_UPDATE: Duration = Duration::from_secs(10);
pub const STATUS_REPORT: Duration = Duration::from_secs(300);

pub struct NodeAgent {
    pub client: kube::Client,
    pub name: String,
    pub facts: NodeFacts,
    pub runtime: Runtime,
    pub cni: Arc<CniRuntime>,
    /// Reported as `status.daemonEndpoints.kubeletEndpoint.Port` (0 when the API is off).
    pub kubelet_port: u16,
    /// Hard eviction thresholds and the file systems they watch.
    pub eviction: pressure::Eviction,
    pub system_reserved: reserved::Reserved,
    pub kube_reserved: reserved::Reserved,
    /// The pressure conditions as last reported, for pod admission.
    pub conditions: Arc<std::sync::Mutex<pressure::Pressure>>,
}

/// Readiness inputs: `None` = fine, `Some(message)` = what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub runtime: Option<String>,
    pub network: Option<String>,
    /// Hard eviction thresholds crossed.
    pub pressure: pressure::Pressure,
}

fn cond(
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
    prev: &[NodeCondition],
) -> NodeCondition {
    let status = if ok { "True" } else { "False" };
    let since = prev
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(since),
    }
}

/// Node conditions: Ready only when containerd answers and a CNI config is usable.
pub fn conditions(h: &Health, now: jiff::Timestamp, prev: &[NodeCondition]) -> Vec<NodeCondition> {
    let ready = match (&h.runtime, &h.network) {
        (None, None) => cond(
            "Ready",
            true,
            "KubeletReady",
            "skiff agent is posting ready status",
            now,
            prev,
        ),
        (Some(r), _) => cond(
            "Ready",
            false,
            "KubeletNotReady",
            &format!("container runtime is down: {r}"),
            now,
            prev,
        ),
        (None, Some(n)) => cond(
            "Ready",
            false,
            "KubeletNotReady",
            &format!(
                "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:{n}"
            ),
            now,
            prev,
        ),
    };
    let network = match &h.network {
        None => cond(
            "NetworkUnavailable",
            false,
            "CNIConfigured",
            "CNI configuration is in place",
            now,
            prev,
        ),
        Some(n) => cond("NetworkUnavailable", true, "NoCNIConfig", n, now, prev),
    };
    let p = &h.pressure;
    let memory = if p.memory {
        cond(
            "MemoryPressure",
            true,
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
            now,
            prev,
        )
    } else {
        cond(
            "MemoryPressure",
            false,
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
            now,
            prev,
        )
    };
    let disk = if p.disk {
        cond(
            "DiskPressure",
            true,
            "KubeletHasDiskPressure",
            "kubelet has disk pressure",
            now,
            prev,
        )
    } else {
        cond(
            "DiskPressure",
            false,
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
            now,
            prev,
        )
    };
    let pid = if p.pid {
        cond(
            "PIDPressure",
            true,
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
            now,
            prev,
        )
    } else {
        cond(
            "PIDPressure",
            false,
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            now,
            prev,
        )
    };
    vec![memory, disk, pid, network, ready]
}

impl NodeAgent {
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), self.name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
            ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
        ])
    }

    pub async fn health(&self) -> Health {
        let runtime = self.runtime.version().await.err().map(|e| e.to_string());
        // NetworkReady: a usable conflist, its plugins found, and their STATUS (CNI 1.1).
        let network = match self.cni.status().await {
            Ok(()) => None,
            Err(e) => Some(format!("Network plugin returns error: {e}")),
        };
        let pressure = self.eviction.pressure().await;
        Health {
            runtime,
            network,
            pressure,
        }
    }

    fn status(&self, conds: Vec<NodeCondition>) -> NodeStatus {
        NodeStatus {
            capacity: Some(self.facts.capacity.clone()),
            allocatable: Some(reserved::allocatable(
                &self.facts.capacity,
                &self.system_reserved,
                &self.kube_reserved,
                &self.eviction.hard,
            )),
            addresses: Some(self.facts.addresses(&self.name)),
            node_info: Some(self.facts.info.clone()),
            conditions: Some(conds),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: i32::from(self.kubelet_port),
                }),
            }),
            ..Default::default()
        }
    }

    /// Create the Node, or update labels and status of an existing one.
    pub async fn register(&self, health: &Health) -> anyhow::Result<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        let status = self.status(conditions(health, jiff::Timestamp::now(), &[]));
        let node = Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(self.labels()),
                ..Default::default()
            },
            status: Some(status.clone()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &node).await {
            Ok(_) => tracing::info!(node = %self.name, "registered node"),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let patch = serde_json::json!({ "metadata": { "labels": self.labels() } });
                api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                tracing::info!(node = %self.name, "node already registered; updated it");
            }
            Err(e) => return Err(e.into()),
        }
        self.patch_status(&status).await
    }

    async fn patch_status(&self, status: &NodeStatus) -> anyhow::Result<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = serde_json::json!({ "status": status });
        api.patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Wait until the API server's node IPAM has set `spec.podCIDR`.
    pub async fn wait_pod_cidr(&self) -> anyhow::Result<String> {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut logged = false;
        loop {
            match api.get(&self.name).await {
                Ok(n) => {
                    if let Some(cidr) = n.spec.and_then(|s| s.pod_cidr).filter(|c| !c.is_empty()) {
                        return Ok(cidr);
                    }
                    if !logged {
                        tracing::info!("waiting for spec.podCIDR");
                        logged = true;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read own node"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Post status when it changes (checked every 10 s) and at least every 5 minutes.
    pub async fn status_loop(self: Arc<Self>) {
        let mut prev: Vec<NodeCondition> = Vec::new();
        let mut last_health: Option<Health> = None;
        let mut last_post = Instant::now();
        let mut transitions = pressure::Transitions::default();
        let mut tick = tokio::time::interval(STATUS_UPDATE);
        loop {
            tick.tick().await;
            let mut health = self.health().await;
            health.pressure = transitions.apply(
                health.pressure,
                Instant::now(),
                self.eviction.transition_period,
            );
            *self.conditions.lock().unwrap_or_else(|e| e.into_inner()) = health.pressure;
            let changed = last_health.as_ref() != Some(&health);
            if !changed && last_post.elapsed() < STATUS_REPORT {
                continue;
            }
            let conds = conditions(&health, jiff::Timestamp::now(), &prev);
            match self.patch_status(&self.status(conds.clone())).await {
                Ok(()) => {
                    if changed {
                        tracing::info!(runtime = ?health.runtime, network = ?health.network,
                            pressure = ?health.pressure, "node status changed");
                    }
                    prev = conds;
                    last_health = Some(health);
                    last_post = Instant::now();
                }
                Err(e) => {
                    let missing = e
                        .downcast_ref::<kube::Error>()
                        .is_some_and(|k| matches!(k, kube::Error::Api(s) if s.code == 404));
                    if missing {
                        // Someone deleted the Node: register again, as the kubelet does.
                        tracing::warn!("node object is gone; registering again");
                        if let Err(e) = self.register(&health).await {
                            tracing::warn!(error = %e, "node re-registration failed");
                        }
                        last_health = None;
                    } else {
                        tracing::warn!(error = %e, "cannot update node status");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness() {
        let now = jiff::Timestamp::now();
        let ok = conditions(
            &Health {
                runtime: None,
                network: None,
                pressure: Default::default(),
            },
            now,
            &[],
        );
        let ready = ok
            .iter()
            .find(|c| c.type_ == "Ready")
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("skiff agent is posting ready status")
        );
        let nu = ok
            .iter()
            .find(|c| c.type_ == "NetworkUnavailable")
            .cloned()
            .unwrap_or_default();
        assert_eq!(nu.status, "False");

        let later = now + jiff::SignedDuration::from_secs(10);
        let bad = conditions(
            &Health {
                runtime: None,
                network: Some("cni config uninitialized".into()),
                pressure: Default::default(),
            },
            later,
            &ok,
        );
        let ready = bad
            .iter()
            .find(|c| c.type_ == "Ready")
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready.status, "False");
        assert!(
            ready
                .message
                .as_deref()
                .is_some_and(|m| m.contains("NetworkPluginNotReady"))
        );
        assert_eq!(ready.last_transition_time.map(|t| t.0), Some(later));
        let mem = bad
            .iter()
            .find(|c| c.type_ == "MemoryPressure")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            mem.last_transition_time.map(|t| t.0),
            Some(now),
            "unchanged conditions keep their transition time"
        );
        let down = conditions(
            &Health {
                runtime: Some("connection refused".into()),
                network: None,
                pressure: Default::default(),
            },
            now,
            &[],
        );
        assert!(
            down.iter()
                .any(|c| c.type_ == "Ready" && c.status == "False")
        );
    }

    #[test]
    fn pressure_conditions() {
        let now = jiff::Timestamp::now();
        let fine = Health {
            runtime: None,
            network: None,
            pressure: pressure::Pressure::default(),
        };
        let before = conditions(&fine, now, &[]);
        let later = now + jiff::SignedDuration::from_secs(10);
        let pressed = Health {
            pressure: pressure::Pressure {
                memory: true,
                disk: true,
                pid: true,
            },
            ..fine.clone()
        };
        let after = conditions(&pressed, later, &before);
        let get = |cs: &[NodeCondition], t: &str| {
            cs.iter()
                .find(|c| c.type_ == t)
                .cloned()
                .unwrap_or_default()
        };
        for (t, reason, message) in [
            (
                "MemoryPressure",
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
            (
                "DiskPressure",
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
            ),
            (
                "PIDPressure",
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
        ] {
            let c = get(&after, t);
            assert_eq!(c.status, "True", "{t}");
            assert_eq!(c.reason.as_deref(), Some(reason));
            assert_eq!(c.message.as_deref(), Some(message));
            assert_eq!(c.last_transition_time.map(|t| t.0), Some(later));
        }
        assert_eq!(get(&after, "Ready").status, "True", "pressure keeps Ready");
        let still = conditions(
            &pressed,
            later + jiff::SignedDuration::from_secs(10),
            &after,
        );
        assert_eq!(
            get(&still, "MemoryPressure")
                .last_transition_time
                .map(|t| t.0),
            Some(later),
            "no transition, same time"
        );
    }
}
