//! Eviction thresholds (`--eviction-hard`, `--eviction-soft`, the kubelet's syntax) and the node pressure
//! they signal. Soft thresholds and their grace periods live in [`soft`].
//!
//! Signals are measured on every node-status sync:
//! - `memory.available`: `MemAvailable` from `/proc/meminfo` (the kubelet uses capacity − working set of the
//!   root cgroup; MemAvailable is the kernel's own estimate of the same and needs no cgroup walk);
//! - `nodefs.*`: statvfs of the agent's root dir; `imagefs.*`: statvfs of containerd's root;
//! - `pid.available`: `kernel.pid_max` − the number of tasks (threads) from `/proc/loadavg`.
//!
//! A threshold is crossed when the available amount is below it. Crossing one, hard or soft (a soft one
//! before its grace period is over too, as the kubelet's `nodeConditions` of the thresholds met ignoring grace
//! periods), sets the MemoryPressure / DiskPressure / PIDPressure condition (and so the node lifecycle
//! controller's `NoSchedule` taint). A condition stays `True` until no threshold of it has been crossed for
//! `--eviction-pressure-transition-period` (5m, as the kubelet), so it does not flap. Evicting pods is
//! `pods::eviction`'s.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::runtime::quantity;

pub mod min_reclaim;
pub mod soft;
pub use min_reclaim::MinReclaim;
pub use soft::SoftThreshold;

/// The kubelet's Linux defaults (k/k `pkg/kubelet/eviction/defaults_linux.go`).
pub const DEFAULT_EVICTION_HARD: &str =
    "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    MemoryAvailable,
    NodefsAvailable,
    NodefsInodesFree,
    ImagefsAvailable,
    ImagefsInodesFree,
    PidAvailable,
}

impl Signal {
    /// The kubelet's name of the signal (`memory.available`).
    pub fn name(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::NodefsAvailable => "nodefs.available",
            Signal::NodefsInodesFree => "nodefs.inodesFree",
            Signal::ImagefsAvailable => "imagefs.available",
            Signal::ImagefsInodesFree => "imagefs.inodesFree",
            Signal::PidAvailable => "pid.available",
        }
    }

    fn parse(s: &str) -> Result<Signal, String> {
        Ok(match s {
            "memory.available" => Signal::MemoryAvailable,
            "nodefs.available" => Signal::NodefsAvailable,
            "nodefs.inodesFree" => Signal::NodefsInodesFree,
            "imagefs.available" => Signal::ImagefsAvailable,
            "imagefs.inodesFree" => Signal::ImagefsInodesFree,
            "pid.available" => Signal::PidAvailable,
            other => {
                return Err(format!(
                    "unknown eviction signal {other:?} (expected memory.available, nodefs.available, \
                     nodefs.inodesFree, imagefs.available, imagefs.inodesFree or pid.available)"
                ));
            }
        })
    }
}

/// A threshold: an absolute amount (bytes, inodes, pids) or a percentage of the capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Amount(u64),
    Percent(f64),
}

impl Value {
    /// The threshold as an amount, given the capacity it is a percentage of.
    pub fn bytes_of(&self, capacity: u64) -> u64 {
        match *self {
            Value::Amount(a) => a,
            Value::Percent(p) => (capacity as f64 * p / 100.0).round() as u64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub signal: Signal,
    pub value: Value,
}

/// Parse `memory.available<100Mi,nodefs.available<10%,…`. Only `<` is accepted, as by the kubelet; a signal
/// given twice is an error. An empty string means no thresholds.
pub fn parse_thresholds(s: &str) -> Result<Vec<Threshold>, String> {
    let mut out: Vec<Threshold> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, raw) = item
            .split_once('<')
            .ok_or_else(|| format!("{item:?}: expected <signal><<quantity or percentage>"))?;
        let signal = Signal::parse(name.trim())?;
        let value = parse_value(item, raw)?;
        if out.iter().any(|t| t.signal == signal) {
            return Err(format!("{item:?}: signal {name} given twice"));
        }
        out.push(Threshold { signal, value });
    }
    Ok(out)
}

/// A quantity (`100Mi`, `1k`, rounded up to a whole unit) or a percentage between 0 and 100 (`10%`); `item`
/// names the whole statement in errors.
fn parse_value(item: &str, raw: &str) -> Result<Value, String> {
    let raw = raw.trim();
    if let Some(pct) = raw.strip_suffix('%') {
        let p: f64 = pct
            .trim()
            .parse()
            .map_err(|_| format!("{item:?}: bad percentage {raw:?}"))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("{item:?}: percentage must be between 0% and 100%"));
        }
        return Ok(Value::Percent(p));
    }
    let milli = quantity::parse_milli(raw).map_err(|e| format!("{item:?}: {e}"))?;
    let whole = u64::try_from((milli + 999).div_euclid(1000))
        .map_err(|_| format!("{item:?}: must not be negative"))?;
    Ok(Value::Amount(whole))
}

/// Parsed `--eviction-hard` (a newtype so that clap takes the whole list as one value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds(pub Vec<Threshold>);

/// [`parse_thresholds`] for clap.
pub fn parse_thresholds_arg(s: &str) -> Result<Thresholds, String> {
    parse_thresholds(s).map(Thresholds)
}

/// One measurement of every signal: `(available, capacity)` pairs; `None` when it could not be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observations {
    pub memory: Option<(u64, u64)>,
    pub nodefs_bytes: Option<(u64, u64)>,
    pub nodefs_inodes: Option<(u64, u64)>,
    pub imagefs_bytes: Option<(u64, u64)>,
    pub imagefs_inodes: Option<(u64, u64)>,
    pub pids: Option<(u64, u64)>,
}

impl Observations {
    fn of(&self, signal: Signal) -> Option<(u64, u64)> {
        match signal {
            Signal::MemoryAvailable => self.memory,
            Signal::NodefsAvailable => self.nodefs_bytes,
            Signal::NodefsInodesFree => self.nodefs_inodes,
            Signal::ImagefsAvailable => self.imagefs_bytes,
            Signal::ImagefsInodesFree => self.imagefs_inodes,
            Signal::PidAvailable => self.pids,
        }
    }
}

/// Which pressure conditions hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

/// One threshold crossed: the signal, its threshold and what is available, in bytes (inodes, pids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossed {
    pub signal: Signal,
    pub threshold: u64,
    pub available: u64,
}

impl Signal {
    /// The resource the kubelet names in eviction messages.
    pub fn resource(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory",
            Signal::NodefsAvailable | Signal::ImagefsAvailable => "ephemeral-storage",
            Signal::NodefsInodesFree | Signal::ImagefsInodesFree => "inodes",
            Signal::PidAvailable => "pids",
        }
    }

    /// A file-system signal (where deleting unused images can help).
    pub fn is_disk(self) -> bool {
        !matches!(self, Signal::MemoryAvailable | Signal::PidAvailable)
    }

    /// Whether the signal counts bytes (printed as a binary quantity) rather than inodes or pids.
    pub fn is_bytes(self) -> bool {
        matches!(
            self,
            Signal::MemoryAvailable | Signal::NodefsAvailable | Signal::ImagefsAvailable
        )
    }
}

/// The thresholds crossed now (available < threshold; a signal that could not be measured crosses
/// nothing), memory first, then pids, then the file systems: the order the agent reclaims them in.
pub fn crossed(thresholds: &[Threshold], obs: &Observations) -> Vec<Crossed> {
    // Nothing held: no minimum reclaim applies.
    min_reclaim::met(thresholds, &[], &min_reclaim::MinReclaims::default(), obs)
}

/// The order signals are reclaimed in: memory, then pids, then the file systems.
pub fn reclaim_rank(signal: Signal) -> u8 {
    match signal {
        Signal::MemoryAvailable => 0,
        Signal::PidAvailable => 1,
        _ => 2,
    }
}

/// The conditions the crossed thresholds raise.
pub fn decide(thresholds: &[Threshold], obs: &Observations) -> Pressure {
    conditions_of(&crossed(thresholds, obs))
}

/// The conditions thresholds met raise.
pub fn conditions_of(met: &[Crossed]) -> Pressure {
    let mut p = Pressure::default();
    for c in met {
        match c.signal {
            Signal::MemoryAvailable => p.memory = true,
            Signal::PidAvailable => p.pid = true,
            _ => p.disk = true,
        }
    }
    p
}

impl Pressure {
    /// The node condition names that hold, in the kubelet's order.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.memory, "MemoryPressure"),
            (self.disk, "DiskPressure"),
            (self.pid, "PIDPressure"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// A byte count as a Kubernetes quantity: the largest binary suffix that divides it (`100Mi`, `51200Ki`).
pub fn quantity_string(bytes: u64) -> String {
    for (suffix, unit) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// `MemAvailable` and `MemTotal` of `/proc/meminfo`, in bytes.
pub fn meminfo_available(meminfo: &str) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kb.checked_mul(1024)
    };
    Some((field("MemAvailable:")?, field("MemTotal:")?))
}

/// Tasks from the 4th field of `/proc/loadavg` (`0.00 0.01 0.05 2/345 6789` → 345).
pub fn loadavg_tasks(loadavg: &str) -> Option<u64> {
    loadavg
        .split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()
}

/// `(bytes available, bytes total)` and `(inodes free, inodes total)` of the file system holding `dir`.
/// `(available, capacity)`, if it could be measured.
type Measured = Option<(u64, u64)>;

/// (available, total) bytes of the file system holding `dir`; blocking.
pub fn fs_bytes(dir: &Path) -> Measured {
    statfs(dir).0
}

fn statfs(dir: &Path) -> (Measured, Measured) {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => {
            let frag = s.fragment_size();
            (
                Some((
                    s.blocks_available().saturating_mul(frag),
                    s.blocks().saturating_mul(frag),
                )),
                Some((s.files_free(), s.files())),
            )
        }
        Err(_) => (None, None),
    }
}

/// The kubelet's default `evictionPressureTransitionPeriod`.
pub const DEFAULT_TRANSITION_PERIOD: &str = "5m";

/// A duration in the Go style the kubelet's flags take: `5m`, `30s`, `1m30s`, `1h`, `0s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0u64;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("duration {s:?}: missing unit (h, m or s)"))?;
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration {s:?}: expected a number before the unit"))?;
        let unit = rest[digits..].chars().next().unwrap_or('?');
        let secs = match unit {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            other => {
                return Err(format!(
                    "duration {s:?}: unknown unit {other:?} (h, m or s)"
                ));
            }
        };
        total = n
            .checked_mul(secs)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {s:?}: too large"))?;
        rest = &rest[digits + unit.len_utf8()..];
    }
    Ok(Duration::from_secs(total))
}

/// Keeps a pressure condition `True` for the transition period after its threshold was last crossed.
#[derive(Debug, Default)]
pub struct Transitions {
    memory: Option<Instant>,
    disk: Option<Instant>,
    pid: Option<Instant>,
}

impl Transitions {
    /// The conditions to report, given what was observed `now`.
    pub fn apply(&mut self, observed: Pressure, now: Instant, period: Duration) -> Pressure {
        let hold = |seen: bool, last: &mut Option<Instant>| {
            if seen {
                *last = Some(now);
            }
            last.is_some_and(|t| now.saturating_duration_since(t) < period) || seen
        };
        Pressure {
            memory: hold(observed.memory, &mut self.memory),
            disk: hold(observed.disk, &mut self.disk),
            pid: hold(observed.pid, &mut self.pid),
        }
    }
}

/// What the pressure check needs: thresholds and the two file systems.
#[derive(Debug, Clone)]
pub struct Eviction {
    pub hard: Vec<Threshold>,
    /// `--eviction-soft` with `--eviction-soft-grace-period`.
    pub soft: Vec<SoftThreshold>,
    /// `--eviction-max-pod-grace-period`: the grace period of a pod evicted for a soft threshold (0: the pod's).
    pub max_pod_grace_period: i64,
    /// How long a pressure condition stays `True` after its threshold was last crossed.
    pub transition_period: Duration,
    pub nodefs: PathBuf,
    /// containerd's root; the nodefs when it does not exist (one file system for both).
    pub imagefs: PathBuf,
    /// `--eviction-minimum-reclaim` and the thresholds it holds met.
    pub min_reclaim: MinReclaim,
}

impl Eviction {
    /// Measure every signal (blocking file-system calls; run off the async threads).
    pub fn observe(&self) -> Observations {
        let (nodefs_bytes, nodefs_inodes) = statfs(&self.nodefs);
        let imagefs = if self.imagefs.exists() {
            &self.imagefs
        } else {
            &self.nodefs
        };
        let (imagefs_bytes, imagefs_inodes) = statfs(imagefs);
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| meminfo_available(&m));
        let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        let tasks = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| loadavg_tasks(&s));
        let pids = pid_max
            .zip(tasks)
            .map(|(max, n)| (max.saturating_sub(n), max));
        Observations {
            memory,
            nodefs_bytes,
            nodefs_inodes,
            imagefs_bytes,
            imagefs_inodes,
            pids,
        }
    }

    /// The conditions the hard and soft thresholds met now raise (grace periods are for evicting): crossed,
    /// or met at the eviction manager's last round and not yet reclaimed by the minimum reclaim.
    pub async fn pressure(&self) -> Pressure {
        let obs = self.observe_async().await;
        let held = self.min_reclaim.held();
        let amounts = &self.min_reclaim.amounts;
        let soft: Vec<Threshold> = self.soft.iter().map(|s| s.threshold).collect();
        let mut all = min_reclaim::met(&self.hard, &held.hard, amounts, &obs);
        all.extend(min_reclaim::met(&soft, &held.soft, amounts, &obs));
        conditions_of(&all)
    }

    /// Whether the image file system is a file system of its own (the kubelet's `HasDedicatedImageFs`):
    /// containerd's root exists and is on another device than the nodefs. Blocking.
    pub fn dedicated_imagefs(&self) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        let dev = |p: &Path| std::fs::metadata(p).ok().map(|m| m.dev());
        match (dev(&self.nodefs), dev(&self.imagefs)) {
            (Some(n), Some(i)) => n != i,
            _ => false,
        }
    }

    /// Hard and soft thresholds in one list.
    pub fn all_thresholds(&self) -> Vec<Threshold> {
        let soft = self.soft.iter().map(|s| s.threshold);
        self.hard.iter().copied().chain(soft).collect()
    }

    /// [`Eviction::observe`] on a blocking thread; nothing measured if that thread fails.
    pub async fn observe_async(&self) -> Observations {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.observe())
            .await
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
