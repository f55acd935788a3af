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
        Some(m) => ((m.max(0) as u64).saturating_mul(1024) / 1000).clamp(MIN_SHARES, MAX_SHARES),
    }
}

/// CFS quota for a CPU limit: `milliCPU * period / 1000`, at least 1 ms.
pub fn cpu_quota(limit_milli: i64) -> i64 {
    (limit_milli.saturating_mul(CFS_PERIOD_US as i64) / 1000).max(MIN_QUOTA_US)
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

/// CPU request and limit (millicores), memory request and limit and ephemeral-storage request (bytes)
/// one container declares. A limit without a request counts as the request (API defaulting).
#[derive(Debug, Clone, Copy, Default)]
struct Declared {
    cpu_request: Option<i64>,
    cpu_limit: Option<i64>,
    memory_request: Option<i64>,
    memory_limit: Option<i64>,
    storage_request: Option<i64>,
}

fn declared(c: &Container) -> Result<Declared, String> {
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
    let bytes = |list, key| quantity_of(list, key).map(quantity::bytes).transpose();
    let memory_limit = bytes(limits, "memory")?;
    Ok(Declared {
        cpu_request,
        cpu_limit,
        memory_request: bytes(requests, "memory")?.or(memory_limit),
        memory_limit,
        storage_request: bytes(requests, "ephemeral-storage")?
            .or(bytes(limits, "ephemeral-storage")?),
    })
}

/// Resources of one container.
pub fn container_resources(c: &Container) -> Result<Resources, String> {
    let d = declared(c)?;
    Ok(Resources {
        cpu_shares: cpu_shares(d.cpu_request),
        cpu_quota: d.cpu_limit.map(cpu_quota),
        cpu_period: CFS_PERIOD_US,
        memory_limit: d.memory_limit,
    })
}

/// What the pod-level cgroup (`<parent>/pod<uid>`) gets, as the kubelet's `ResourceConfigForPod`: CPU
/// shares from the pod's CPU request (so a BestEffort pod weighs the minimum, 2, against pods that
/// requested CPU), and a CFS quota and a memory limit only when every container declares that limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodResources {
    pub cpu_shares: u64,
    pub cpu_quota: Option<i64>,
    pub memory_limit: Option<i64>,
}

/// The pod's effective value of one resource (k8s `PodRequests`/`PodLimits`): app containers and
/// sidecars (init containers with `restartPolicy: Always`) run together and add up; a regular init
/// container runs alone next to the sidecars started before it. The pod needs the larger of the two.
fn effective(
    apps: &[Declared],
    inits: &[(bool, Declared)],
    f: fn(&Declared) -> Option<i64>,
) -> i64 {
    let mut sidecars = 0i64;
    let mut init_peak = 0i64;
    for (sidecar, d) in inits {
        let v = f(d).unwrap_or(0);
        if *sidecar {
            sidecars = sidecars.saturating_add(v);
        } else {
            init_peak = init_peak.max(sidecars.saturating_add(v));
        }
    }
    let running = apps
        .iter()
        .filter_map(f)
        .fold(sidecars, i64::saturating_add);
    running.max(init_peak)
}

/// The pod's app containers and its init containers (with whether each is a sidecar), declared.
type PodDeclared = (Vec<Declared>, Vec<(bool, Declared)>);

fn pod_declared(pod: &Pod) -> Result<PodDeclared, String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok((Vec::new(), Vec::new()));
    };
    Ok((
        spec.containers
            .iter()
            .map(declared)
            .collect::<Result<Vec<_>, _>>()?,
        spec.init_containers
            .iter()
            .flatten()
            .map(|c| Ok((c.restart_policy.as_deref() == Some("Always"), declared(c)?)))
            .collect::<Result<Vec<_>, String>>()?,
    ))
}

/// Memory and ephemeral-storage the pod requests, in bytes, counted as [`pod_resources`] counts CPU:
/// what node-pressure eviction compares the pod's usage with.
pub fn pod_requested_bytes(pod: &Pod) -> Result<(u64, u64), String> {
    let (apps, inits) = pod_declared(pod)?;
    let bytes =
        |f: fn(&Declared) -> Option<i64>| u64::try_from(effective(&apps, &inits, f)).unwrap_or(0);
    Ok((bytes(|d| d.memory_request), bytes(|d| d.storage_request)))
}

pub fn pod_resources(pod: &Pod) -> Result<PodResources, String> {
    let (apps, inits) = pod_declared(pod)?;
    let every = |f: fn(&Declared) -> Option<i64>| {
        !apps.is_empty()
            && apps
                .iter()
                .chain(inits.iter().map(|(_, d)| d))
                .all(|d| f(d).is_some())
    };
    Ok(PodResources {
        cpu_shares: cpu_shares(Some(effective(&apps, &inits, |d| d.cpu_request))),
        cpu_quota: every(|d| d.cpu_limit)
            .then(|| cpu_quota(effective(&apps, &inits, |d| d.cpu_limit))),
        memory_limit: every(|d| d.memory_limit)
            .then(|| effective(&apps, &inits, |d| d.memory_limit)),
    })
}

fn write_value(dir: &Path, file: &str, value: &str) -> Result<(), String> {
    let path = dir.join(file);
    std::fs::write(&path, value).map_err(|e| format!("write {value:?} to {}: {e}", path.display()))
}

fn create(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))
}

/// Create the pod-level cgroup and set its CPU weight, CPU quota and memory limit (blocking; before
/// the pod's first container, whose cgroup runc then creates inside it). Idempotent.
pub fn apply_pod(pod_uid: &str, r: &PodResources) -> Result<(), String> {
    let rel = format!("{}/pod{pod_uid}", parent());
    let root = Path::new("/sys/fs/cgroup");
    if is_v2() {
        // Every level down to the pod hands cpu and memory to its children, as runc does for a container.
        let mut dir = root.to_path_buf();
        for part in rel.split('/') {
            delegate(&dir)?;
            dir.push(part);
            create(&dir)?;
        }
        let quota = r.cpu_quota.map_or("max".to_string(), |q| q.to_string());
        write_value(&dir, "cpu.weight", &cpu_weight(r.cpu_shares).to_string())?;
        write_value(&dir, "cpu.max", &format!("{quota} {CFS_PERIOD_US}"))?;
        let memory = r.memory_limit.map_or("max".to_string(), |m| m.to_string());
        return write_value(&dir, "memory.max", &memory);
    }
    let cpu = root.join("cpu");
    if cpu.is_dir() {
        let dir = cpu.join(&rel);
        create(&dir)?;
        write_value(&dir, "cpu.shares", &r.cpu_shares.to_string())?;
        write_value(&dir, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
        write_value(
            &dir,
            "cpu.cfs_quota_us",
            &r.cpu_quota.unwrap_or(-1).to_string(),
        )?;
    }
    let memory = root.join("memory");
    if memory.is_dir() {
        let dir = memory.join(&rel);
        create(&dir)?;
        write_value(
            &dir,
            "memory.limit_in_bytes",
            &r.memory_limit.unwrap_or(-1).to_string(),
        )?;
    }
    Ok(())
}

/// cgroup v2: enable the cpu and memory controllers for the children of `dir` where `dir` has them.
fn delegate(dir: &Path) -> Result<(), String> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let (available, enabled) = (read("cgroup.controllers"), read("cgroup.subtree_control"));
    let has = |list: &str, c: &str| list.split_whitespace().any(|w| w == c);
    let wanted: Vec<String> = ["cpu", "memory"]
        .iter()
        .filter(|c| has(&available, c) && !has(&enabled, c))
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    write_value(dir, "cgroup.subtree_control", &wanted.join(" "))
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
    fn pod_level_resources() {
        let none = pod(vec![container(&[], &[]), container(&[], &[])]);
        assert_eq!(
            pod_resources(&none),
            Ok(PodResources {
                cpu_shares: 2,
                cpu_quota: None,
                memory_limit: None
            }),
            "BestEffort weighs the minimum"
        );
        let fixed = [("cpu", "250m"), ("memory", "32Mi")];
        let guaranteed = pod(vec![container(&fixed, &fixed), container(&fixed, &fixed)]);
        assert_eq!(
            pod_resources(&guaranteed),
            Ok(PodResources {
                cpu_shares: 512,
                cpu_quota: Some(50_000),
                memory_limit: Some(64 << 20)
            })
        );
        // One container without limits: the pod gets no quota and no memory limit, only the weight.
        let burstable = pod(vec![
            container(&fixed, &fixed),
            container(&[("cpu", "1")], &[]),
        ]);
        assert_eq!(
            pod_resources(&burstable),
            Ok(PodResources {
                cpu_shares: 1280,
                cpu_quota: None,
                memory_limit: None
            })
        );
    }

    #[test]
    fn init_containers_and_sidecars_in_pod_resources() {
        let lim = |cpu: &str| container(&[], &[("cpu", cpu), ("memory", "16Mi")]);
        let sidecar = |cpu: &str| Container {
            restart_policy: Some("Always".into()),
            ..lim(cpu)
        };
        let with_inits = |inits: Vec<Container>| {
            let mut p = pod(vec![lim("100m")]);
            if let Some(spec) = p.spec.as_mut() {
                spec.init_containers = Some(inits);
            }
            p
        };
        // A big init container alone sets the pod's figure.
        let r = pod_resources(&with_inits(vec![lim("300m")])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.memory_limit),
            (307, Some(30_000), Some(16 << 20))
        );
        // A sidecar started before an init container runs next to it, and next to the app containers.
        let r = pod_resources(&with_inits(vec![sidecar("200m"), lim("250m")]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.cpu_shares, r.cpu_quota), (460, Some(45_000)));
        let r = pod_resources(&with_inits(vec![lim("250m"), sidecar("200m")]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.cpu_quota, r.memory_limit),
            (Some(30_000), Some(32 << 20))
        );
        // An init container without a request keeps the app containers' request.
        let r =
            pod_resources(&with_inits(vec![container(&[], &[])])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.memory_limit),
            (102, None, None)
        );
        assert!(pod_resources(&pod(vec![container(&[("cpu", "lots")], &[])])).is_err());
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
