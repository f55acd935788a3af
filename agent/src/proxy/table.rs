//! Writing table `ip skiff-proxy` without losing what the kernel keeps in it: the client addresses in the
//! session affinity sets. The first write of the agent (and the one after a failed write) replaces the table
//! whole; later writes update it in place, in one `nft -f -` transaction as kube-proxy's nftables mode does:
//!
//! - every chain is flushed (`flush table` removes rules only, not set elements) and the fixed maps and sets
//!   are emptied, then everything is defined again;
//! - an affinity set is only created when missing, so the addresses in it stay; one whose endpoint is gone is
//!   deleted, one whose timeout changed is deleted and created again (its entries are lost);
//! - a service or endpoint chain no longer used stays, empty, for at least [`STALE_DELAY`] before it is
//!   deleted: before Linux 6.2 the kernel notices only a little later that a map element it just removed no
//!   longer points at the chain, and deleting it at once fails the whole transaction with "busy".
//!
//! Should any of that fail (someone deleted the table, or a kernel refuses to change a set), the agent logs
//! it, waits, and replaces the table whole on the next attempt.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::Programmed;
use super::rules::{COLLECTIONS, Ruleset, TABLE, collection, replace};

/// How long a chain no longer used waits before it is deleted (kube-proxy waits one second too).
pub const STALE_DELAY: Duration = Duration::from_secs(1);

/// What the table holds after a successful write of this agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// The table's body as last written.
    body: String,
    /// Service and endpoint chains in the table, in use or not.
    chains: BTreeSet<String>,
    /// Chains in the table no longer in use, and since when.
    stale: BTreeMap<String, Instant>,
    /// Affinity sets in the table and their timeouts.
    sets: BTreeMap<String, u32>,
}

impl Held {
    /// What the table holds once `rules` replaced it ([`replace`]).
    pub fn replaced_by(rules: &Ruleset) -> Held {
        Held {
            body: rules.body.clone(),
            chains: rules.chains.clone(),
            stale: BTreeMap::new(),
            sets: rules.affinity_sets.clone(),
        }
    }

    /// Whether the table already holds `rules` and no stale chain is due for deletion at `now`.
    pub fn holds(&self, rules: &Ruleset, now: Instant) -> bool {
        self.body == rules.body && !self.stale.values().any(|since| due(*since, now))
    }
}

fn due(since: Instant, now: Instant) -> bool {
    now.saturating_duration_since(since) >= STALE_DELAY
}

/// The batch that turns the table from `held` into `rules` at `now`, in place, and what the table holds
/// after it.
pub fn update(held: &Held, rules: &Ruleset, now: Instant) -> (String, Held) {
    let mut out = String::new();
    let _ = writeln!(out, "table ip {TABLE}\nflush table ip {TABLE}");
    // The fixed maps and sets, created if missing (someone may have deleted the table), then emptied.
    let _ = writeln!(out, "table ip {TABLE} {{");
    for (kind, name, ty) in COLLECTIONS {
        collection(&mut out, &format!("{kind} {name}"), ty, Vec::new());
    }
    out.push_str("}\n");
    for (kind, name, _) in COLLECTIONS {
        let _ = writeln!(out, "flush {kind} ip {TABLE} {name}");
    }
    for (set, timeout) in &held.sets {
        if rules.affinity_sets.get(set) != Some(timeout) {
            let _ = writeln!(out, "delete set ip {TABLE} {set}");
        }
    }
    let mut stale = BTreeMap::new();
    for chain in held.chains.difference(&rules.chains) {
        let since = held.stale.get(chain).copied().unwrap_or(now);
        if due(since, now) {
            let _ = writeln!(out, "delete chain ip {TABLE} {chain}");
        } else {
            stale.insert(chain.clone(), since);
        }
    }
    let _ = write!(out, "table ip {TABLE} {{\n{}}}\n", rules.body);
    let chains = rules.chains.iter().chain(stale.keys()).cloned().collect();
    let after = Held {
        body: rules.body.clone(),
        chains,
        stale,
        sets: rules.affinity_sets.clone(),
    };
    (out, after)
}

/// The service proxy's table as this agent last wrote it, and the back-off after failed writes.
#[derive(Debug, Default)]
pub struct ProxyTable {
    /// `None`: unknown (nothing written yet, or the last write failed): the next write replaces the table.
    held: Option<Held>,
    writer: Programmed,
}

impl ProxyTable {
    /// Bring the table to `rules`; `present` says whether the table is still there when the caller checked
    /// (`None`: not checked). True when a batch was applied. A failure is logged, waited out (as
    /// [`Programmed::apply`] does) and `changed` notified so that the caller tries again.
    pub async fn sync(&mut self, rules: &Ruleset, present: Option<bool>, changed: &Notify) -> bool {
        let now = Instant::now();
        if present == Some(false) {
            self.held = None;
        }
        let (batch, after) = match &self.held {
            Some(held) if held.holds(rules, now) => return false,
            Some(held) => update(held, rules, now),
            None => (replace(rules), Held::replaced_by(rules)),
        };
        self.writer.apply(batch.clone(), "service", changed).await;
        if self.writer.is_current(&batch) {
            self.held = Some(after);
            true
        } else {
            self.held = None;
            false
        }
    }
}

#[cfg(test)]
mod tests;
