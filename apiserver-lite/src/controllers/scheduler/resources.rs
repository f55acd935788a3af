//! Resource quantities and what a pod requests from a node.
//!
//! Amounts are kept in milli-units (`100m` CPU = 100, `1Ki` memory = 1_024_000) as `i128`, which covers
//! every quantity Kubernetes accepts without floating point.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";
pub const PODS: &str = "pods";

/// Requests the scheduler assumes for scoring when a container requests nothing (kube-scheduler's
/// `DefaultMilliCPURequest` and `DefaultMemoryRequest`), so that such pods still spread.
const DEFAULT_CPU_MILLI: i128 = 100;
const DEFAULT_MEMORY_MILLI: i128 = 200 * 1024 * 1024 * 1000;

/// Resource name → amount in milli-units.
pub type Resources = BTreeMap<String, i128>;

/// Parse a Kubernetes quantity (`500m`, `2`, `1.5Gi`, `128974848`, `129e6`, `12E`) into milli-units,
/// rounding up. `None` if it is not a valid quantity or too large.
pub fn parse_milli(text: &str) -> Option<i128> {
    // One parser for the whole server: the storage kinds' exact nano-unit one.
    let nano = crate::resources::storage::quantity::parse(text.trim())?;
    const PER_MILLI: i128 = 1_000_000;
    Some(nano.div_euclid(PER_MILLI) + i128::from(nano.rem_euclid(PER_MILLI) != 0))
}

fn quantities(map: Option<&BTreeMap<String, Quantity>>) -> Resources {
    let mut out = Resources::new();
    for (name, quantity) in map.into_iter().flatten() {
        // Invalid quantities were rejected by validation; if one slips through, it requests nothing.
        if let Some(v) = parse_milli(&quantity.0) {
            out.insert(name.clone(), v);
        }
    }
    out
}

/// A container's requests; a resource with a limit and no request requests its limit (API defaulting).
fn container_requests(container: &Container) -> Resources {
    let resources = container.resources.as_ref();
    let mut requests = quantities(resources.and_then(|r| r.requests.as_ref()));
    for (name, limit) in quantities(resources.and_then(|r| r.limits.as_ref())) {
        requests.entry(name).or_insert(limit);
    }
    requests
}

fn with_defaults(mut requests: Resources) -> Resources {
    let cpu = requests.entry(CPU.to_string()).or_insert(0);
    if *cpu == 0 {
        *cpu = DEFAULT_CPU_MILLI;
    }
    let memory = requests.entry(MEMORY.to_string()).or_insert(0);
    if *memory == 0 {
        *memory = DEFAULT_MEMORY_MILLI;
    }
    requests
}

fn add(into: &mut Resources, other: &Resources) {
    for (name, v) in other {
        *into.entry(name.clone()).or_insert(0) += v;
    }
}

fn max_into(into: &mut Resources, other: &Resources) {
    for (name, v) in other {
        let entry = into.entry(name.clone()).or_insert(0);
        *entry = (*entry).max(*v);
    }
}

/// The effective requests of a pod, as kube-scheduler computes them: the larger of the sum of app
/// containers (plus sidecars) and the largest init container (plus the sidecars started before it), plus
/// the pod overhead. With `non_zero`, containers without cpu/memory requests count the scoring defaults.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::new();
    };
    let effective = |c: &Container| {
        if non_zero {
            with_defaults(container_requests(c))
        } else {
            container_requests(c)
        }
    };
    let mut sidecars = Resources::new();
    let mut init_peak = Resources::new();
    for init in spec.init_containers.iter().flatten() {
        let requests = effective(init);
        if init.restart_policy.as_deref() == Some("Always") {
            add(&mut sidecars, &requests);
            max_into(&mut init_peak, &sidecars);
        } else {
            let mut during = sidecars.clone();
            add(&mut during, &requests);
            max_into(&mut init_peak, &during);
        }
    }
    let mut total = sidecars;
    for container in &spec.containers {
        add(&mut total, &effective(container));
    }
    max_into(&mut total, &init_peak);
    add(&mut total, &quantities(spec.overhead.as_ref()));
    total
}

/// What a node offers: `status.allocatable`, or `status.capacity` when allocatable is not reported.
pub fn node_allocatable(node: &k8s_openapi::api::core::v1::Node) -> Resources {
    let status = node.status.as_ref();
    let allocatable = status
        .and_then(|s| s.allocatable.as_ref())
        .filter(|a| !a.is_empty());
    quantities(allocatable.or_else(|| status.and_then(|s| s.capacity.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quantities() {
        let cases: &[(&str, Option<i128>)] = &[
            ("1", Some(1000)),
            ("100m", Some(100)),
            ("0.5", Some(500)),
            (".5", Some(500)),
            ("1.5Gi", Some(1_610_612_736_000)),
            ("128Mi", Some(134_217_728_000)),
            ("1k", Some(1_000_000)),
            ("1e3", Some(1_000_000)),
            ("1E3", Some(1_000_000)),
            ("129e6", Some(129_000_000_000)),
            ("1M", Some(1_000_000_000)),
            ("0.1m", Some(1)),
            ("110", Some(110_000)),
            ("-1", Some(-1000)),
            ("", None),
            ("abc", None),
            ("1x", None),
            ("1..2", None),
            ("1e999", None),
            ("99999999999999999999999999999999Ei", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_milli(text), *expected, "{text}");
        }
    }

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("valid pod")
    }

    fn container(name: &str, cpu: &str, memory: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "image": "x", "resources": {"requests": {"cpu": cpu, "memory": memory}}})
    }

    #[test]
    fn pod_requests_follow_the_init_container_max_rule() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [container("i1", "2", "1Gi"), container("i2", "500m", "3Gi")],
                "containers": [container("a", "300m", "1Gi"), container("b", "200m", "1Gi")],
                "overhead": {"cpu": "10m"}
            }
        }));
        let r = pod_requests(&p, false);
        assert_eq!(r[CPU], 2010);
        assert_eq!(r[MEMORY], 3 * 1024 * 1024 * 1024 * 1000);
    }

    #[test]
    fn sidecars_add_to_the_app_containers() {
        let mut sidecar = container("s", "100m", "0");
        sidecar["restartPolicy"] = "Always".into();
        let p = pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [sidecar, container("i", "250m", "0")], "containers": [container("a", "200m", "0")]}
        }));
        // max(sidecar 100 + app 200, sidecar 100 + init 250) = 350
        assert_eq!(pod_requests(&p, false)[CPU], 350);
    }

    #[test]
    fn limits_stand_in_for_missing_requests_and_scoring_uses_defaults() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "image": "x", "resources": {"limits": {"cpu": "1"}}},
                {"name": "b", "image": "x"}
            ]}
        }));
        let plain = pod_requests(&p, false);
        assert_eq!((plain[CPU], plain.get(MEMORY)), (1000, None));
        let scored = pod_requests(&p, true);
        assert_eq!(scored[CPU], 1100);
        assert_eq!(scored[MEMORY], 2 * DEFAULT_MEMORY_MILLI);
    }
}
