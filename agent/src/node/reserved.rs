//! `--system-reserved` / `--kube-reserved` (`cpu=100m,memory=256Mi,ephemeral-storage=1Gi,pid=1000`) and the
//! node's allocatable resources, computed as the kubelet does (k/k `pkg/kubelet/cm/node_container_manager_linux.go`,
//! `GetNodeAllocatableAbsolute`): capacity − system-reserved − kube-reserved − hard eviction threshold.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::pressure::{Signal, Threshold};
use crate::runtime::quantity;

/// Resources set aside for the system or for Kubernetes daemons.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserved {
    pub cpu_milli: u64,
    pub memory: u64,
    pub ephemeral_storage: u64,
    /// Process IDs; accepted as the kubelet does, it does not change allocatable (there is no pid resource).
    pub pid: u64,
}

fn non_negative(v: i128, what: &str, raw: &str) -> Result<u64, String> {
    u64::try_from(v).map_err(|_| format!("{what}={raw}: must not be negative"))
}

/// Parse `cpu=100m,memory=256Mi,ephemeral-storage=1Gi,pid=1000` (any subset; empty = nothing reserved).
pub fn parse_reserved(s: &str) -> Result<Reserved, String> {
    let mut r = Reserved::default();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?}: expected <resource>=<quantity>"))?;
        let (key, value) = (key.trim(), value.trim());
        let milli = quantity::parse_milli(value).map_err(|e| format!("{key}: {e}"))?;
        let whole = |m: i128| non_negative((m + 999).div_euclid(1000), key, value);
        match key {
            "cpu" => r.cpu_milli = non_negative(milli, key, value)?,
            "memory" => r.memory = whole(milli)?,
            "ephemeral-storage" => r.ephemeral_storage = whole(milli)?,
            "pid" => r.pid = whole(milli)?,
            other => {
                return Err(format!(
                    "unknown resource {other:?} (expected cpu, memory, ephemeral-storage or pid)"
                ));
            }
        }
    }
    Ok(r)
}

/// A capacity quantity in bytes (or millicores for `cpu`); `None` if absent or unreadable.
fn amount(capacity: &BTreeMap<String, Quantity>, key: &str) -> Option<u64> {
    let q = capacity.get(key)?;
    let milli = quantity::parse_milli(&q.0).ok()?;
    let v = if key == "cpu" {
        milli
    } else {
        (milli + 999).div_euclid(1000)
    };
    u64::try_from(v).ok()
}

/// Bytes as a quantity, in `Ki` when that is exact (as the kubelet prints memory).
pub fn bytes_quantity(bytes: u64) -> Quantity {
    if bytes.is_multiple_of(1024) {
        Quantity(format!("{}Ki", bytes / 1024))
    } else {
        Quantity(bytes.to_string())
    }
}

fn cpu_quantity(milli: u64) -> Quantity {
    if milli.is_multiple_of(1000) {
        Quantity((milli / 1000).to_string())
    } else {
        Quantity(format!("{milli}m"))
    }
}

/// Allocatable = capacity − system-reserved − kube-reserved − the hard eviction threshold of the resource
/// (`memory.available` for memory, `nodefs.available` for ephemeral-storage), never below zero.
pub fn allocatable(
    capacity: &BTreeMap<String, Quantity>,
    system: &Reserved,
    kube: &Reserved,
    hard: &[Threshold],
) -> BTreeMap<String, Quantity> {
    let mut out = capacity.clone();
    if let Some(cpu) = amount(capacity, "cpu") {
        let left = cpu.saturating_sub(system.cpu_milli + kube.cpu_milli);
        out.insert("cpu".into(), cpu_quantity(left));
    }
    let threshold = |signal: Signal, cap: u64| {
        hard.iter()
            .find(|t| t.signal == signal)
            .map_or(0, |t| t.value.bytes_of(cap))
    };
    if let Some(mem) = amount(capacity, "memory") {
        let minus = system
            .memory
            .saturating_add(kube.memory)
            .saturating_add(threshold(Signal::MemoryAvailable, mem));
        out.insert("memory".into(), bytes_quantity(mem.saturating_sub(minus)));
    }
    if let Some(disk) = amount(capacity, "ephemeral-storage") {
        let minus = system
            .ephemeral_storage
            .saturating_add(kube.ephemeral_storage)
            .saturating_add(threshold(Signal::NodefsAvailable, disk));
        out.insert(
            "ephemeral-storage".into(),
            bytes_quantity(disk.saturating_sub(minus)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::pressure::parse_thresholds;

    #[test]
    fn parses_reserved() {
        let r =
            parse_reserved("cpu=100m, memory=256Mi,ephemeral-storage=1Gi,pid=1000").expect("valid");
        assert_eq!(
            r,
            Reserved {
                cpu_milli: 100,
                memory: 256 << 20,
                ephemeral_storage: 1 << 30,
                pid: 1000
            }
        );
        assert_eq!(parse_reserved("").expect("valid"), Reserved::default());
        assert_eq!(parse_reserved("cpu=1.5").expect("valid").cpu_milli, 1500);
        assert!(
            parse_reserved("gpu=1")
                .expect_err("rejected")
                .contains("unknown resource")
        );
        assert!(
            parse_reserved("memory")
                .expect_err("rejected")
                .contains("expected")
        );
        assert!(
            parse_reserved("memory=lots")
                .expect_err("rejected")
                .contains("memory")
        );
        assert!(
            parse_reserved("memory=-1Gi")
                .expect_err("rejected")
                .contains("negative")
        );
    }

    #[test]
    fn allocatable_arithmetic() {
        let capacity = BTreeMap::from([
            ("cpu".to_string(), Quantity("2".into())),
            ("memory".to_string(), Quantity("8Gi".into())),
            ("ephemeral-storage".to_string(), Quantity("100Gi".into())),
            ("pods".to_string(), Quantity("110".into())),
        ]);
        let system = parse_reserved("cpu=100m,memory=1Gi,ephemeral-storage=1Gi").expect("valid");
        let kube = parse_reserved("cpu=200m,memory=256Mi").expect("valid");
        let hard = parse_thresholds("memory.available<100Mi,nodefs.available<10%").expect("valid");
        let a = allocatable(&capacity, &system, &kube, &hard);
        assert_eq!(a["cpu"].0, "1700m");
        // 8192Mi − 1024Mi − 256Mi − 100Mi = 6812Mi
        assert_eq!(a["memory"].0, format!("{}Ki", 6812 * 1024));
        // 100Gi − 1Gi − 10 % of 100Gi = 89Gi
        assert_eq!(a["ephemeral-storage"].0, format!("{}Ki", 89 * 1024 * 1024));
        assert_eq!(a["pods"].0, "110");
        // Nothing reserved and no thresholds: allocatable = capacity (in canonical units).
        let none = allocatable(&capacity, &Reserved::default(), &Reserved::default(), &[]);
        assert_eq!(none["memory"].0, format!("{}Ki", 8 * 1024 * 1024));
        // More reserved than there is: zero, not negative.
        let huge = parse_thresholds("memory.available<100000Ti").expect("valid");
        let zero = allocatable(&capacity, &system, &kube, &huge);
        assert_eq!(zero["memory"].0, "0Ki");
    }
}
