//! Image garbage collection, as the kubelet's image GC manager: every [`GC_PERIOD`], when the image
//! filesystem (containerd's root) is at least `high`% full, delete images that no container uses — least
//! recently used first, and only images this agent has known for at least `min_age` — until usage would be
//! below `low`%. When not enough can be freed, a `FreeDiskSpaceFailed` warning goes on the Node.
//!
//! Decisions:
//! - "In use" means referenced by any container in containerd, running or exited (the kubelet counts every
//!   container the runtime knows): a dead container can still be restarted or shown with `--previous`.
//! - Last use is remembered in memory from the containers seen at each pass, as the kubelet does; after an
//!   agent restart every image starts as just seen, so nothing is deleted for `min_age`.
//! - Sizes are the compressed config + layers of the platform manifest (what `crictl images` shows for
//!   containerd); deleting an image record with `sync` lets containerd's GC remove its content and
//!   unpacked snapshots before the call returns.
//! - `high` = 100 turns image GC off (the kubelet's rule).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::images::ImageService;
use crate::pods::recorder::Recorder;
use crate::runtime::Runtime;

/// How often usage is checked (the kubelet's `ImageGCPeriod`).
pub const GC_PERIOD: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Usage (%) at or above which GC runs; 100 turns it off.
    pub high: u8,
    /// Usage (%) GC tries to get below.
    pub low: u8,
    /// Images known for less than this are kept.
    pub min_age: Duration,
}

impl Policy {
    pub fn new(high: u8, low: u8, min_age: Duration) -> Result<Self, String> {
        if high > 100 || low > 100 {
            return Err(format!(
                "image GC thresholds are percentages: high {high}, low {low}"
            ));
        }
        if low > high {
            return Err(format!(
                "--image-gc-low-threshold ({low}) must not be above --image-gc-high-threshold ({high})"
            ));
        }
        Ok(Self { high, low, min_age })
    }

    pub fn enabled(&self) -> bool {
        self.high < 100
    }

    /// Bytes to free for usage to get below `low`, when usage has reached `high`; 0 otherwise.
    pub fn to_free(&self, available: u64, capacity: u64) -> u64 {
        if capacity == 0 || !self.enabled() {
            return 0;
        }
        let used = capacity.saturating_sub(available);
        if (u128::from(used) * 100) < u128::from(capacity) * u128::from(self.high) {
            return 0;
        }
        let target_available = (u128::from(capacity) * u128::from(100 - self.low) / 100) as u64;
        target_available.saturating_sub(available)
    }
}

/// An image GC may delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub size: u64,
    pub first_seen: Instant,
    pub last_used: Instant,
}

/// Which candidates to delete to free `amount` bytes: old enough, least recently used first (then the
/// longest known), until enough is chosen. Returns the names and the bytes they hold.
pub fn select(
    mut candidates: Vec<Candidate>,
    amount: u64,
    now: Instant,
    min_age: Duration,
) -> (Vec<String>, u64) {
    candidates.retain(|c| now.saturating_duration_since(c.first_seen) >= min_age);
    candidates.sort_by(|a, b| {
        a.last_used
            .cmp(&b.last_used)
            .then(a.first_seen.cmp(&b.first_seen))
            .then(a.name.cmp(&b.name))
    });
    let (mut chosen, mut freed) = (Vec::new(), 0u64);
    for c in candidates {
        if freed >= amount {
            break;
        }
        freed = freed.saturating_add(c.size);
        chosen.push(c.name);
    }
    (chosen, freed)
}

struct Seen {
    first_seen: Instant,
    last_used: Instant,
}

pub struct ImageGc {
    runtime: Runtime,
    images: ImageService,
    recorder: Recorder,
    /// containerd's root, or (when that does not exist, as for the eviction signals) the agent's root.
    imagefs: [PathBuf; 2],
    policy: Policy,
    seen: Mutex<HashMap<String, Seen>>,
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub wanted: u64,
    pub freed: u64,
    pub deleted: Vec<String>,
}

impl ImageGc {
    pub fn new(
        runtime: Runtime,
        images: ImageService,
        recorder: Recorder,
        imagefs: [PathBuf; 2],
        policy: Policy,
    ) -> Self {
        Self {
            runtime,
            images,
            recorder,
            imagefs,
            policy,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Every `period`: a pass, and a warning on the Node when it could not free enough.
    pub async fn run(self: std::sync::Arc<Self>, period: Duration) {
        if !self.policy.enabled() {
            return;
        }
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.pass().await {
                Ok(p) if p.freed < p.wanted => {
                    let msg = format!(
                        "Failed to garbage collect required amount of images. Attempted to free {} bytes, but only found {} bytes eligible to free.",
                        p.wanted, p.freed
                    );
                    tracing::warn!(deleted = ?p.deleted, "{msg}");
                    self.recorder.node_warning("FreeDiskSpaceFailed", msg);
                }
                Ok(p) if !p.deleted.is_empty() => {
                    tracing::info!(deleted = ?p.deleted, freed = p.freed, "image GC");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "image GC failed");
                    self.recorder.node_warning("ImageGCFailed", e);
                }
            }
        }
    }

    /// Measure the image filesystem and, above `high`, delete what `select` picks.
    pub async fn pass(&self) -> Result<Pass, String> {
        let [root, fallback] = self.imagefs.clone();
        let dir = if root.exists() { root } else { fallback };
        let shown = dir.display().to_string();
        let (available, capacity) =
            tokio::task::spawn_blocking(move || crate::node::pressure::fs_bytes(&dir))
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("cannot statvfs {shown}"))?;
        let candidates = self.detect().await?;
        let wanted = self.policy.to_free(available, capacity);
        if wanted == 0 {
            return Ok(Pass::default());
        }
        let sizes: HashMap<String, u64> = candidates
            .iter()
            .map(|c| (c.name.clone(), c.size))
            .collect();
        let (names, _) = select(candidates, wanted, Instant::now(), self.policy.min_age);
        Ok(self.delete_all(names, &sizes, wanted).await)
    }

    /// Delete every unused image old enough, whatever the usage (the eviction manager's reclaim before it
    /// evicts pods for disk pressure; the kubelet's `DeleteUnusedImages`).
    pub async fn reclaim(&self) -> Result<Pass, String> {
        let candidates = self.detect().await?;
        let sizes: HashMap<String, u64> = candidates
            .iter()
            .map(|c| (c.name.clone(), c.size))
            .collect();
        let (names, _) = select(candidates, u64::MAX, Instant::now(), self.policy.min_age);
        Ok(self.delete_all(names, &sizes, 0).await)
    }

    async fn delete_all(
        &self,
        names: Vec<String>,
        sizes: &HashMap<String, u64>,
        wanted: u64,
    ) -> Pass {
        let mut pass = Pass {
            wanted,
            ..Default::default()
        };
        for name in names {
            match self.images.remove(&name).await {
                Ok(()) => {
                    pass.freed = pass
                        .freed
                        .saturating_add(sizes.get(&name).copied().unwrap_or(0));
                    pass.deleted.push(name);
                }
                Err(e) => tracing::warn!(image = %name, error = %e, "image GC: cannot delete"),
            }
        }
        pass
    }

    /// Record the images present and in use now; the unused ones, with their sizes, are the candidates.
    async fn detect(&self) -> Result<Vec<Candidate>, String> {
        let present = self.images.names().await.map_err(|e| e.to_string())?;
        let in_use: HashSet<String> = self
            .runtime
            .list_containers(None)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|c| c.image)
            .collect();
        let now = Instant::now();
        let unused: Vec<(String, Instant, Instant)> = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.retain(|name, _| present.contains(name));
            present
                .iter()
                .filter_map(|name| {
                    let s = seen.entry(name.clone()).or_insert(Seen {
                        first_seen: now,
                        last_used: now,
                    });
                    if in_use.contains(name) {
                        s.last_used = now;
                        return None;
                    }
                    Some((name.clone(), s.first_seen, s.last_used))
                })
                .collect()
        };
        let names: Vec<String> = unused.iter().map(|(n, _, _)| n.clone()).collect();
        let sizes = self.sizes(&names).await;
        Ok(unused
            .into_iter()
            .map(|(name, first_seen, last_used)| Candidate {
                size: sizes.get(&name).copied().unwrap_or(0),
                name,
                first_seen,
                last_used,
            })
            .collect())
    }

    async fn sizes(&self, names: &[String]) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        for name in names {
            out.insert(name.clone(), self.images.size(name).await.unwrap_or(0));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let p = Policy::new(85, 80, Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}"));
        // 84 % used: nothing to do.
        assert_eq!(p.to_free(16, 100), 0);
        // 85 % used: free down to 80 % (20 available).
        assert_eq!(p.to_free(15, 100), 5);
        assert_eq!(p.to_free(0, 100), 20);
        assert_eq!(p.to_free(0, 0), 0);
        let off = Policy::new(100, 80, Duration::ZERO).unwrap_or_else(|e| panic!("{e}"));
        assert!(!off.enabled());
        assert_eq!(off.to_free(0, 100), 0);
        assert!(Policy::new(80, 85, Duration::ZERO).is_err());
        assert!(Policy::new(101, 85, Duration::ZERO).is_err());
    }

    #[test]
    fn least_recently_used_old_enough_first() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let c = |name: &str, size, first, last| Candidate {
            name: name.into(),
            size,
            first_seen: at(first),
            last_used: at(last),
        };
        let cands = vec![
            c("recent", 10, 0, 500),
            c("young", 10, 550, 550),
            c("oldest", 10, 0, 100),
            c("old", 10, 0, 200),
        ];
        let now = at(600);
        let min_age = Duration::from_secs(120);
        let (names, freed) = select(cands.clone(), 15, now, min_age);
        assert_eq!(names, vec!["oldest", "old"]);
        assert_eq!(freed, 20);
        // Everything eligible when more is wanted than there is; the young one never.
        let (names, freed) = select(cands, u64::MAX, now, min_age);
        assert_eq!(names, vec!["oldest", "old", "recent"]);
        assert_eq!(freed, 30);
    }
}
