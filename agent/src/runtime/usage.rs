//! Resource usage as the kubelet's summary has it (through cadvisor): cumulative CPU time and the memory
//! working set of the node, of pod cgroups and of container cgroups, read from cgroupfs and `/proc`.
//! Blocking file reads: call through `spawn_blocking`.
//!
//! - cgroup v1: CPU is `cpuacct.usage` (ns); the working set is `memory.usage_in_bytes` minus
//!   `total_inactive_file` of `memory.stat`.
//! - cgroup v2: CPU is `usage_usec` of `cpu.stat`; the working set is `memory.current` minus `inactive_file`
//!   of `memory.stat`.
//! - The node: CPU from the `cpu` line of `/proc/stat`; memory from the root cgroup as runc/cadvisor read
//!   it for the kubelet (v1: the root memory cgroup as above; v2, whose root has no `memory.current`:
//!   `anon + file − inactive_file` of the root `memory.stat`, or `/proc/meminfo` if that is missing).
//!
//! Working sets are floored at 0, as cadvisor does.

use std::path::{Path, PathBuf};

/// Why a usage figure could not be read. [`UsageError::Vanished`] is the ordinary end of a cgroup (the
/// container just exited): callers skip it.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("{} is gone", path.display())]
    Vanished { path: PathBuf },
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {detail}", path.display())]
    Parse { path: PathBuf, detail: String },
}

/// Where usage is read from: the cgroupfs mount, the proc mount, and which cgroup version is mounted.
/// Tests point both at fixture trees.
#[derive(Debug, Clone)]
pub struct Sources {
    pub cgroup_root: PathBuf,
    pub proc_root: PathBuf,
    pub v2: bool,
}

impl Sources {
    /// `/sys/fs/cgroup` and `/proc` of this host.
    pub fn host(v2: bool) -> Self {
        Self {
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            proc_root: PathBuf::from("/proc"),
            v2,
        }
    }
}

/// Cumulative CPU time and the memory working set of one cgroup (or of the node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ns: u64,
    pub working_set: u64,
}

fn read(path: &Path) -> Result<String, UsageError> {
    std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => UsageError::Vanished {
            path: path.to_path_buf(),
        },
        // ENODEV: a file of a cgroup the kernel is removing.
        _ if source.raw_os_error() == Some(libc::ENODEV) => UsageError::Vanished {
            path: path.to_path_buf(),
        },
        _ => UsageError::Read {
            path: path.to_path_buf(),
            source,
        },
    })
}

fn read_number(path: &Path) -> Result<u64, UsageError> {
    let text = read(path)?;
    text.trim().parse().map_err(|_| UsageError::Parse {
        path: path.to_path_buf(),
        detail: format!("{:?} is not a number", text.trim()),
    })
}

/// The value of `key` in a flat-keyed file (`memory.stat`, `cpu.stat`: `key value` lines).
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn read_keyed(path: &Path, key: &str) -> Result<u64, UsageError> {
    keyed_value(&read(path)?, key).ok_or_else(|| UsageError::Parse {
        path: path.to_path_buf(),
        detail: format!("no {key:?}"),
    })
}

/// The v1 hierarchy holding `cpuacct` (`cpuacct`, or only `cpu,cpuacct` where it is not linked).
fn cpuacct_dir(root: &Path) -> PathBuf {
    let dir = root.join("cpuacct");
    if dir.is_dir() {
        dir
    } else {
        root.join("cpu,cpuacct")
    }
}

/// Usage of the cgroup at `rel` (a path relative to the hierarchy root, e.g. `skiff/pod<uid>/<id>`).
pub fn cgroup_usage(src: &Sources, rel: &str) -> Result<Usage, UsageError> {
    let rel = rel.trim_start_matches('/');
    if src.v2 {
        let dir = src.cgroup_root.join(rel);
        let cpu_us = read_keyed(&dir.join("cpu.stat"), "usage_usec")?;
        let current = read_number(&dir.join("memory.current"))?;
        let inactive = read_keyed(&dir.join("memory.stat"), "inactive_file")?;
        return Ok(Usage {
            cpu_ns: cpu_us.saturating_mul(1000),
            working_set: current.saturating_sub(inactive),
        });
    }
    let cpu_ns = read_number(
        &cpuacct_dir(&src.cgroup_root)
            .join(rel)
            .join("cpuacct.usage"),
    )?;
    let mem = src.cgroup_root.join("memory").join(rel);
    let usage = read_number(&mem.join("memory.usage_in_bytes"))?;
    let inactive = read_keyed(&mem.join("memory.stat"), "total_inactive_file")?;
    Ok(Usage {
        cpu_ns,
        working_set: usage.saturating_sub(inactive),
    })
}

/// CPU time the node spent on work, in clock ticks, from the `cpu` line of `/proc/stat`: user, nice,
/// system, irq and softirq. Not idle or iowait (waiting), not steal (the hypervisor running others), not
/// guest/guest_nice (already counted in user/nice): what the root cgroup's `cpuacct.usage`, the kubelet's
/// figure, counts.
pub fn parse_proc_stat_busy_ticks(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq [steal guest guest_nice]
    let at = |i: usize| fields.get(i).copied();
    Some(at(0)? + at(1)? + at(2)? + at(5).unwrap_or(0) + at(6).unwrap_or(0))
}

/// A `/proc/meminfo` field in bytes (`MemTotal:  8000 kB`).
pub fn meminfo_bytes(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb.saturating_mul(1024))
    })
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// The node's cumulative CPU time in ns (from `/proc/stat`).
pub fn node_cpu_ns(src: &Sources) -> Result<u64, UsageError> {
    let path = src.proc_root.join("stat");
    let ticks = parse_proc_stat_busy_ticks(&read(&path)?).ok_or_else(|| UsageError::Parse {
        path: path.clone(),
        detail: "no cpu line".into(),
    })?;
    let ns_per_tick = 1_000_000_000 / clock_ticks();
    Ok(ticks.saturating_mul(ns_per_tick))
}

/// The node's memory working set in bytes (see the module doc).
pub fn node_working_set(src: &Sources) -> Result<u64, UsageError> {
    if !src.v2 {
        let mem = src.cgroup_root.join("memory");
        let usage = read_number(&mem.join("memory.usage_in_bytes"))?;
        let inactive = read_keyed(&mem.join("memory.stat"), "total_inactive_file")?;
        return Ok(usage.saturating_sub(inactive));
    }
    if let Ok(stat) = read(&src.cgroup_root.join("memory.stat")) {
        let field = |k| keyed_value(&stat, k);
        if let (Some(anon), Some(file), Some(inactive)) =
            (field("anon"), field("file"), field("inactive_file"))
        {
            return Ok(anon.saturating_add(file).saturating_sub(inactive));
        }
    }
    let path = src.proc_root.join("meminfo");
    let text = read(&path)?;
    let field = |k: &str| {
        meminfo_bytes(&text, k).ok_or_else(|| UsageError::Parse {
            path: path.clone(),
            detail: format!("no {k}"),
        })
    };
    Ok(field("MemTotal")?
        .saturating_sub(field("MemFree")?)
        .saturating_sub(field("Inactive(file)")?))
}

/// Unit tests, and fixture trees of real cgroup files for the tests of `/metrics/resource`.
#[cfg(test)]
#[path = "usage_tests.rs"]
pub(crate) mod tests;
