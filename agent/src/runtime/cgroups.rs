//! Pod and container cgroups: resource math (kubelet's `helpers_linux.go`), QoS class, cgroupfs paths.

use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::quantity;

pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
pub const CFS_PERIOD_US: u64 = 100_000;
pub const MIN_QUOTA_US: i64 = 1_000;
/// The default cgroup root of everything the agent starts (cgroupfs driver).
pub const CGROUP_PARENT: &str = "skiff";

static PARENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Check a `--cgroup-parent` value: a relative cgroup path of plain names (`skiff`, `test/skiff-a`).
pub fn parse_parent(s: &str) -> Result<String, String> {
    let trimmed = s.trim_matches('/');
    if trimmed.is_empty()
        || trimmed
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.contains(char::is_whitespace))
    {
        return Err(format!(
            "{s:?} is not a cgroup path of plain names (like \"skiff\")"
        ));
    }
    Ok(trimmed.to_string())
}

/// Set the cgroup parent once at start-up (before any pod starts); later calls are ignored.
pub fn set_parent(name: String) {
    let _ = PARENT.set(name);
}

/// The cgroup parent of pod cgroups: `--cgroup-parent`, default [`CGROUP_PARENT`].
pub fn parent() -> &'static str {
    PARENT.get().map(String::as_str).unwrap_or(CGROUP_PARENT)
}

/// What the OCI spec's `linux.resources` gets for one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    pub cpu_shares: u64,
    pub cpu_quota: Option<i64>,
    pub cpu_period: u64,
    pub memory_limit: Option<i64>,
}

/// `shares = milliCPU * 1024 / 1000`, clamped to [2, 262144]; no request gives the minimum.
pub fn cpu_shares(milli: Option<i64>) -> u64 {
    match milli {
        None | Some(0) => MIN_SHARES,
        Some(m) => ((m.max(0) as u64) * 1024 / 1000).clamp(MIN_SHARES, MAX_SHARES),
    }
}

/// CFS quota for a CPU limit: `milliCPU * period / 1000`, at least 1 ms.
pub fn cpu_quota(limit_milli: i64) -> i64 {
    (limit_milli * CFS_PERIOD_US as i64 / 1000).max(MIN_QUOTA_US)
}

/// cgroup v2 `cpu.weight` for v1 shares.
pub fn cpu_weight(shares: u64) -> u64 {
    1 + (shares.clamp(MIN_SHARES, MAX_SHARES) - 2) * 9999 / 262_142
}

fn quantity_of<'a>(
    list: Option<
        &'a std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
    key: &str,
) -> Option<&'a str> {
    list.and_then(|m| m.get(key)).map(|q| q.0.as_str())
}

/// Resources of one container. A limit without a request means request = limit (API defaulting).
pub fn container_resources(c: &Container) -> Result<Resources, String> {
    let res = c.resources.as_ref();
    let requests = res.and_then(|r| r.requests.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let cpu_limit = quantity_of(limits, "cpu")
        .map(quantity::cpu_millis)
        .transpose()?;
    let cpu_request = quantity_of(requests, "cpu")
        .map(quantity::cpu_millis)
        .transpose()?
        .or(cpu_limit);
    let memory_limit = quantity_of(limits, "memory")
        .map(quantity::bytes)
        .transpose()?;
    Ok(Resources {
        cpu_shares: cpu_shares(cpu_request),
        cpu_quota: cpu_limit.map(cpu_quota),
        cpu_period: CFS_PERIOD_US,
        memory_limit,
    })
}

/// The pod's QoS class (`Guaranteed`, `Burstable`, `BestEffort`), as the API server and kubelet compute it.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return "BestEffort";
    };
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut any_set = false;
    let mut guaranteed = true;
    for c in all {
        let res = c.resources.as_ref();
        let requests = res.and_then(|r| r.requests.as_ref());
        let limits = res.and_then(|r| r.limits.as_ref());
        for key in ["cpu", "memory"] {
            let req = quantity_of(requests, key)
                .and_then(|q| quantity::parse_milli(q).ok())
                .filter(|v| *v != 0);
            let lim = quantity_of(limits, key)
                .and_then(|q| quantity::parse_milli(q).ok())
                .filter(|v| *v != 0);
            if req.is_some() || lim.is_some() {
                any_set = true;
            }
            match (req, lim) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if r != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any_set {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// `linux.cgroupsPath` of a container (cgroupfs style, same relative path on v1 and v2).
pub fn cgroups_path(pod_uid: &str, container_id: &str) -> String {
    format!("/{}/pod{pod_uid}/{container_id}", parent())
}

/// How many processes the kernel's OOM killer killed in a container's cgroup: `oom_kill` in
/// `memory.events` (v2) or `memory.oom_control` (v1, kernels since 4.13). Read it before the task is
/// deleted: runc removes the cgroup then. `None` when the cgroup or the counter is not there.
pub fn oom_kills(pod_uid: &str, container_id: &str) -> Option<u64> {
    let rel = cgroups_path(pod_uid, container_id);
    let rel = rel.trim_start_matches('/');
    let file = if is_v2() {
        Path::new("/sys/fs/cgroup").join(rel).join("memory.events")
    } else {
        Path::new("/sys/fs/cgroup/memory")
            .join(rel)
            .join("memory.oom_control")
    };
    parse_oom_kills(&std::fs::read_to_string(file).ok()?)
}

/// The `oom_kill N` line of `memory.events` / `memory.oom_control`.
pub fn parse_oom_kills(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (key, value) = l.split_once(' ')?;
        (key == "oom_kill")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// Whether `/sys/fs/cgroup` is the unified (v2) hierarchy.
pub fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Remove the pod-level cgroup directories runc leaves behind (blocking; the container cgroups are already
/// gone after tasks.Delete). Missing directories are fine.
pub fn remove_pod_cgroups(pod_uid: &str) -> Vec<String> {
    let rel = format!("{}/pod{pod_uid}", parent());
    let mut errors = Vec::new();
    let mut dirs = Vec::new();
    if is_v2() {
        dirs.push(Path::new("/sys/fs/cgroup").join(&rel));
    } else if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            let p = e.path().join(&rel);
            if !dirs.contains(&p) {
                dirs.push(p);
            }
        }
    }
    for dir in dirs {
        match std::fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // A symlinked controller (cpu -> cpu,cpuacct) shows up twice; the second try is NotFound.
            Err(e) => errors.push(format!("rmdir {}: {e}", dir.display())),
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use std::collections::BTreeMap;

    fn q(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect(),
        )
    }

    fn container(req: &[(&str, &str)], lim: &[(&str, &str)]) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: if req.is_empty() { None } else { q(req) },
                limits: if lim.is_empty() { None } else { q(lim) },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(cs: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: cs,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn shares_and_quota() {
        assert_eq!(cpu_shares(None), 2);
        assert_eq!(cpu_shares(Some(1)), 2);
        assert_eq!(cpu_shares(Some(500)), 512);
        assert_eq!(cpu_shares(Some(1000)), 1024);
        assert_eq!(cpu_shares(Some(1_000_000)), MAX_SHARES);
        assert_eq!(cpu_quota(500), 50_000);
        assert_eq!(cpu_quota(1), 1_000);
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(MAX_SHARES), 10_000);
    }

    #[test]
    fn resources_from_container() {
        let r = container_resources(&container(
            &[("cpu", "250m")],
            &[("cpu", "500m"), ("memory", "64Mi")],
        ));
        assert_eq!(
            r,
            Ok(Resources {
                cpu_shares: 256,
                cpu_quota: Some(50_000),
                cpu_period: 100_000,
                memory_limit: Some(67_108_864)
            })
        );
        // Limit only: request defaults to the limit.
        let r = container_resources(&container(&[], &[("cpu", "1")])).map(|r| r.cpu_shares);
        assert_eq!(r, Ok(1024));
        assert!(container_resources(&container(&[("cpu", "lots")], &[])).is_err());
    }

    #[test]
    fn qos() {
        assert_eq!(qos_class(&pod(vec![container(&[], &[])])), "BestEffort");
        assert_eq!(
            qos_class(&pod(vec![container(&[("cpu", "100m")], &[])])),
            "Burstable"
        );
        let g = container(
            &[("cpu", "1"), ("memory", "1Gi")],
            &[("cpu", "1000m"), ("memory", "1Gi")],
        );
        assert_eq!(qos_class(&pod(vec![g.clone()])), "Guaranteed");
        assert_eq!(
            qos_class(&pod(vec![container(
                &[],
                &[("cpu", "1"), ("memory", "1Gi")]
            )])),
            "Guaranteed"
        );
        assert_eq!(qos_class(&pod(vec![g, container(&[], &[])])), "Burstable");
    }

    #[test]
    fn oom_counters() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(parse_oom_kills(v1), Some(2));
        let v2 = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kills(v2), Some(1));
        assert_eq!(parse_oom_kills("oom_kill_disable 0\n"), None);
        assert_eq!(oom_kills("no-such-pod", "no-such-container"), None);
    }

    #[test]
    fn parent_names() {
        assert_eq!(parse_parent("skiff").as_deref(), Ok("skiff"));
        assert_eq!(
            parse_parent("/test/skiff-a/").as_deref(),
            Ok("test/skiff-a")
        );
        for bad in ["", "/", "a/../b", "a//b", "x y"] {
            assert!(parse_parent(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn path() {
        assert_eq!(cgroups_path("u1", "u1-nginx-0"), "/skiff/podu1/u1-nginx-0");
    }
}
