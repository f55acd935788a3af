//! Resource metrics of nodes and pods (the `metrics.k8s.io` pipeline, as metrics-server provides it to kube).
//!
//! Every API server scrapes the agents' `/metrics/resource` and keeps the latest usage here, in memory; the
//! `metrics.k8s.io/v1beta1` API serves it and the HorizontalPodAutoscaler controller reads it. Contract:
//! docs/contracts.md, "Resource metrics and autoscaling".

pub mod api;
pub mod format;
pub mod parse;
pub mod points;
pub mod scraper;

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

/// `--metric-resolution` when not given (the contract's; metrics-server's own default is 60 s).
pub const DEFAULT_RESOLUTION: Duration = Duration::from_secs(15);

/// metrics-server's rules for `--metric-resolution`: at least 10 s, and its nine tenths at least the per-node
/// request timeout (10 s), so that a scrape ends before the next starts.
pub fn validate_resolution(resolution: Duration) -> Result<(), String> {
    let shown = format::go_duration(resolution);
    if resolution < Duration::from_secs(10) {
        return Err(format!(
            "metric-resolution should be a time duration at least 10s, but value {shown} provided"
        ));
    }
    if resolution * 9 / 10 < scraper::SCRAPE_TIMEOUT {
        return Err(format!(
            "metric-resolution should be larger than kubelet-request-timeout, but metric-resolution value {shown} kubelet-request-timeout value {} provided",
            format::go_duration(scraper::SCRAPE_TIMEOUT)
        ));
    }
    Ok(())
}

/// One container's usage over `window` ending at the pod's `timestamp`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerUsage {
    pub name: String,
    /// Average CPU use over the window, in nanocores (1e-9 of a core).
    pub cpu_nanocores: u64,
    /// Memory working set at the end of the window (usage minus inactive file pages), in bytes.
    pub memory_bytes: u64,
}

/// A pod's usage: its running containers over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct PodUsage {
    /// The end of the window (the later of the two scrapes the rate comes from).
    pub timestamp: SystemTime,
    pub window: Duration,
    pub containers: Vec<ContainerUsage>,
}

/// A node's usage over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeUsage {
    pub timestamp: SystemTime,
    pub window: Duration,
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
}

/// The latest usage of every node and pod, shared by the scraper (writer), the metrics API and the HPA
/// controller (readers).
#[derive(Debug, Default)]
pub struct MetricsStore {
    nodes: RwLock<HashMap<String, NodeUsage>>,
    /// Keyed by (namespace, pod name).
    pods: RwLock<HashMap<(String, String), PodUsage>>,
}

impl MetricsStore {
    pub fn node(&self, name: &str) -> Option<NodeUsage> {
        self.nodes.read().ok()?.get(name).cloned()
    }

    /// Every node with usage, sorted by name.
    pub fn nodes(&self) -> Vec<(String, NodeUsage)> {
        let Ok(m) = self.nodes.read() else {
            return Vec::new();
        };
        let mut v: Vec<_> = m.iter().map(|(k, u)| (k.clone(), u.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<PodUsage> {
        self.pods
            .read()
            .ok()?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Every pod with usage in `namespace` (all namespaces when `None`), sorted by namespace and name.
    pub fn pods(&self, namespace: Option<&str>) -> Vec<(String, String, PodUsage)> {
        let Ok(m) = self.pods.read() else {
            return Vec::new();
        };
        let mut v: Vec<_> = m
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|((ns, n), u)| (ns.clone(), n.clone(), u.clone()))
            .collect();
        v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        v
    }

    pub fn set_node(&self, name: &str, usage: NodeUsage) {
        if let Ok(mut m) = self.nodes.write() {
            m.insert(name.to_string(), usage);
        }
    }

    pub fn remove_node(&self, name: &str) {
        if let Ok(mut m) = self.nodes.write() {
            m.remove(name);
        }
    }

    pub fn set_pod(&self, namespace: &str, name: &str, usage: PodUsage) {
        if let Ok(mut m) = self.pods.write() {
            m.insert((namespace.to_string(), name.to_string()), usage);
        }
    }

    /// Replace everything with the usage of the latest scrape: nodes and pods it lacks are gone.
    pub fn replace(
        &self,
        nodes: HashMap<String, NodeUsage>,
        pods: HashMap<(String, String), PodUsage>,
    ) {
        if let Ok(mut m) = self.nodes.write() {
            *m = nodes;
        }
        if let Ok(mut m) = self.pods.write() {
            *m = pods;
        }
    }

    /// Keep only the pods for which `keep(namespace, name)` holds.
    pub fn retain_pods(&self, mut keep: impl FnMut(&str, &str) -> bool) {
        if let Ok(mut m) = self.pods.write() {
            m.retain(|(ns, n), _| keep(ns, n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_rules() {
        assert!(validate_resolution(DEFAULT_RESOLUTION).is_ok());
        assert_eq!(
            validate_resolution(Duration::from_secs(5)),
            Err(
                "metric-resolution should be a time duration at least 10s, but value 5s provided"
                    .into()
            )
        );
        let e = validate_resolution(Duration::from_secs(11))
            .err()
            .unwrap_or_default();
        assert!(e.contains("larger than kubelet-request-timeout"), "{e}");
        assert!(validate_resolution(Duration::from_millis(11_200)).is_ok());
    }
}
