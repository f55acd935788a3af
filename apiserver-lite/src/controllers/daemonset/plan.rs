//! What a DaemonSet sync decides, without IO: per node, create or delete daemon pods (kube's
//! `podsShouldBeOnNode`), which old pods a rolling update replaces next (`rollingUpdate`), and the status
//! counts (`updateDaemonSetStatus`).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::Value;

use super::super::owners::{Stored, seconds, str_at};
use super::super::replicaset::pods::{available, ready};
use super::pods::updated;

/// What the sync knows about one DaemonSet.
pub struct Ctx<'a> {
    pub ds: &'a Value,
    pub hash: &'a str,
    pub min_ready: i64,
    pub now: i64,
}

impl Ctx<'_> {
    /// `Ok(true)` when available now, `Err(at)` when it will be at UNIX time `at`.
    fn available(&self, pod: &Stored) -> bool {
        available(pod, self.min_ready, self.now) == Ok(true)
    }

    fn updated(&self, pod: &Stored) -> bool {
        updated(&pod.value, self.ds, self.hash)
    }

    /// `maxSurge > 0` in a RollingUpdate (kube's `AllowsSurge`).
    pub fn surge(&self) -> bool {
        rolling(self.ds).is_some_and(|ru| int_or_percent(ru.get("maxSurge"), 100, true) > 0)
    }
}

fn rolling(ds: &Value) -> Option<&Value> {
    if str_at(ds, "/spec/updateStrategy/type") != "RollingUpdate" {
        return None;
    }
    ds.pointer("/spec/updateStrategy/rollingUpdate")
}

/// kube's `GetScaledValueFromIntOrPercent`: a number, or a percentage of `total` (rounded up or down).
pub fn int_or_percent(v: Option<&Value>, total: i64, round_up: bool) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if round_up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// kube's `podByCreationTimestampAndPhase`: scheduled first, then oldest first, then by name.
pub fn oldest_first(a: &Stored, b: &Stored) -> Ordering {
    let bound = |p: &Stored| !str_at(&p.value, "/spec/nodeName").is_empty();
    let created = |p: &Stored| seconds(str_at(&p.value, "/metadata/creationTimestamp"));
    bound(b)
        .cmp(&bound(a))
        .then_with(|| created(a).cmp(&created(b)))
        .then_with(|| a.name().cmp(b.name()))
}

fn phase(pod: &Stored) -> &str {
    str_at(&pod.value, "/status/phase")
}

/// The decision for one node.
#[derive(Debug, Default)]
pub struct NodePlan {
    pub create: bool,
    pub delete: Vec<Stored>,
    /// Failed pods: deleted unless the node's failed-pod backoff holds them (the caller decides).
    pub failed: Vec<Stored>,
    /// Succeeded pods, deleted (kube records `SucceededDaemonPod`).
    pub succeeded: Vec<Stored>,
}

/// kube's `podsShouldBeOnNode` for the daemon pods of one node (`pods`: claimed, not terminal and
/// deleted at once).
pub fn node_plan(
    ctx: &Ctx<'_>,
    should_run: bool,
    should_continue: bool,
    pods: &[Stored],
) -> NodePlan {
    let mut plan = NodePlan::default();
    let exists = !pods.is_empty();
    if should_run && !exists {
        plan.create = true;
        return plan;
    }
    if !should_continue {
        plan.delete = pods.iter().filter(|p| !p.deleting()).cloned().collect();
        return plan;
    }
    let mut running: Vec<Stored> = Vec::new();
    for pod in pods.iter().filter(|p| !p.deleting()) {
        match phase(pod) {
            "Failed" => plan.failed.push(pod.clone()),
            "Succeeded" => plan.succeeded.push(pod.clone()),
            _ => running.push(pod.clone()),
        }
    }
    running.sort_by(oldest_first);
    if !ctx.surge() {
        // More than one: keep the oldest.
        plan.delete.extend(running.into_iter().skip(1));
        return plan;
    }
    if running.len() <= 1 {
        plan.create = running.is_empty() && should_run;
        return plan;
    }
    // Surge: at most the oldest new pod and the oldest old one; the old one goes once the new one is
    // available (or right away when it is not ready itself).
    let mut oldest_new: Option<Stored> = None;
    let mut oldest_old: Option<Stored> = None;
    for pod in running {
        let slot = if ctx.updated(&pod) {
            &mut oldest_new
        } else {
            &mut oldest_old
        };
        if slot.is_none() {
            *slot = Some(pod);
        } else {
            plan.delete.push(pod);
        }
    }
    if let (Some(new), Some(old)) = (&oldest_new, oldest_old)
        && (!ready(&old) || ctx.available(new))
    {
        plan.delete.push(old);
    }
    plan
}

/// kube's `findUpdatedPodsOnNode`: the node's new and old pod (not being deleted); `None` when there
/// are several of either.
fn new_and_old<'a>(
    ctx: &Ctx<'_>,
    pods: &'a [Stored],
) -> Option<(Option<&'a Stored>, Option<&'a Stored>)> {
    let (mut new, mut old) = (None, None);
    for pod in pods.iter().filter(|p| !p.deleting()) {
        let slot = if ctx.updated(pod) { &mut new } else { &mut old };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod);
    }
    Some((new, old))
}

/// The next step of a rolling update: old pods to delete and nodes to surge onto (kube's
/// `rollingUpdate`). `node_pods` has an entry (maybe empty) for every node that should run the pod and
/// one for every other node with daemon pods; `desired` counts the nodes that should run it.
pub fn rolling_update(
    ctx: &Ctx<'_>,
    node_pods: &BTreeMap<String, Vec<Stored>>,
    desired: i64,
) -> (Vec<Stored>, Vec<String>) {
    let Some(ru) = rolling(ctx.ds) else {
        return (Vec::new(), Vec::new());
    };
    let max_surge = int_or_percent(ru.get("maxSurge"), desired, true);
    let mut max_unavailable = int_or_percent(ru.get("maxUnavailable"), desired, true);
    if desired > 0 && max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    if max_surge == 0 {
        // Delete just enough old pods to stay within maxUnavailable; the manage step recreates them.
        let mut unavailable = 0;
        let mut must_replace: Vec<Stored> = Vec::new();
        let mut candidates: Vec<Stored> = Vec::new();
        for pods in node_pods.values() {
            match new_and_old(ctx, pods) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !ctx.available(new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !ctx.available(old) {
                        must_replace.push(old.clone());
                    } else if unavailable < max_unavailable {
                        candidates.push(old.clone());
                    }
                }
            }
        }
        let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i64) as usize;
        must_replace.extend(candidates.into_iter().take(room));
        return (must_replace, Vec::new());
    }
    // Surge: start new pods next to available old ones, up to maxSurge at a time; an old pod goes once
    // its replacement is available.
    let mut surging = 0;
    let mut delete: Vec<Stored> = Vec::new();
    let mut must_surge: Vec<String> = Vec::new();
    let mut candidates: Vec<String> = Vec::new();
    for (node, pods) in node_pods {
        let Some((new, old)) = new_and_old(ctx, pods) else {
            surging += 1;
            continue;
        };
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !ctx.available(old) {
                    must_surge.push(node.clone());
                } else if surging < max_surge {
                    candidates.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if ctx.available(new) {
                    delete.push(old.clone());
                } else {
                    surging += 1;
                }
            }
        }
    }
    let room = (max_surge - surging).clamp(0, candidates.len() as i64) as usize;
    must_surge.extend(candidates.into_iter().take(room));
    (delete, must_surge)
}

/// The status counters kube writes (`updateDaemonSetStatus`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub desired: i64,
    pub current: i64,
    pub misscheduled: i64,
    pub ready: i64,
    pub updated: i64,
    pub available: i64,
}

/// Count over the nodes (`(should_run, pods on it)`): the oldest pod of each node counts.
pub fn counts<'a>(ctx: &Ctx<'_>, nodes: impl IntoIterator<Item = (bool, &'a [Stored])>) -> Counts {
    let mut c = Counts::default();
    for (should_run, pods) in nodes {
        let scheduled = !pods.is_empty();
        if !should_run {
            c.misscheduled += i64::from(scheduled);
            continue;
        }
        c.desired += 1;
        let Some(pod) = pods.iter().min_by(|a, b| oldest_first(a, b)) else {
            continue;
        };
        c.current += 1;
        if ready(pod) {
            c.ready += 1;
            if ctx.available(pod) {
                c.available += 1;
            }
        }
        if ctx.updated(pod) {
            c.updated += 1;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HASH: &str = "new";

    fn ds(strategy: Value) -> Value {
        json!({"metadata": {"name": "d", "annotations": {"deprecated.daemonset.template.generation": "2"}},
            "spec": {"updateStrategy": strategy}})
    }

    fn rolling_ds(max_unavailable: Value, max_surge: Value) -> Value {
        ds(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable, "maxSurge": max_surge}}),
        )
    }

    fn pod(name: &str, hash: &str, is_ready: bool, created: &str) -> Stored {
        let mut value = json!({"metadata": {"name": name, "uid": name, "creationTimestamp": created,
            "labels": {"controller-revision-hash": hash, "pod-template-generation": if hash == HASH { "2" } else { "1" }}},
            "spec": {"nodeName": "n"}, "status": {"phase": "Running"}});
        if is_ready {
            value["status"]["conditions"] = json!([{"type": "Ready", "status": "True",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        }
        Stored {
            value: std::sync::Arc::new(value),
            revision: 1,
        }
    }

    fn ctx(ds: &Value) -> Ctx<'_> {
        Ctx {
            ds,
            hash: HASH,
            min_ready: 0,
            now: seconds("2026-01-02T00:00:00Z").unwrap_or(0),
        }
    }

    fn names(pods: &[Stored]) -> Vec<&str> {
        pods.iter().map(Stored::name).collect()
    }

    #[test]
    fn node_plans_follow_kube() {
        let d = rolling_ds(json!(1), json!(0));
        let c = ctx(&d);
        assert!(node_plan(&c, true, true, &[]).create);
        assert!(!node_plan(&c, false, true, &[]).create);
        // Duplicates: the oldest stays.
        let a = pod("a", HASH, true, "2026-01-01T00:00:00Z");
        let b = pod("b", HASH, true, "2026-01-01T00:00:05Z");
        let plan = node_plan(&c, true, true, &[b.clone(), a.clone()]);
        assert_eq!(names(&plan.delete), ["b"]);
        assert!(!plan.create);
        // Not eligible any more (untolerated NoExecute, selector): every pod goes.
        let plan = node_plan(&c, false, false, &[a.clone(), b.clone()]);
        assert_eq!(names(&plan.delete), ["a", "b"]);
        // Failed and succeeded pods are reported; no new pod until they are gone.
        let mut failed = a.clone();
        std::sync::Arc::make_mut(&mut failed.value)["status"]["phase"] = json!("Failed");
        let plan = node_plan(&c, true, true, &[failed]);
        assert_eq!((names(&plan.failed), plan.create), (vec!["a"], false));
        let mut done = a.clone();
        std::sync::Arc::make_mut(&mut done.value)["status"]["phase"] = json!("Succeeded");
        assert_eq!(names(&node_plan(&c, true, true, &[done]).succeeded), ["a"]);
        // A pod being deleted is left alone.
        let mut going = b.clone();
        std::sync::Arc::make_mut(&mut going.value)["metadata"]["deletionTimestamp"] =
            json!("2026-01-01T00:00:00Z");
        let plan = node_plan(&c, true, true, &[a.clone(), going]);
        assert!(plan.delete.is_empty() && !plan.create);
    }

    #[test]
    fn surge_keeps_old_until_new_is_available() {
        let d = rolling_ds(json!(0), json!(1));
        let c = ctx(&d);
        assert!(c.surge());
        let old = pod("old", "old", true, "2026-01-01T00:00:00Z");
        let new_pending = pod("new", HASH, false, "2026-01-01T00:01:00Z");
        assert!(
            node_plan(&c, true, true, &[old.clone(), new_pending])
                .delete
                .is_empty()
        );
        let new_ready = pod("new", HASH, true, "2026-01-01T00:01:00Z");
        assert_eq!(
            names(&node_plan(&c, true, true, &[old.clone(), new_ready.clone()]).delete),
            ["old"]
        );
        let mut nodes = BTreeMap::new();
        nodes.insert("n1".to_string(), vec![old.clone()]);
        nodes.insert(
            "n2".to_string(),
            vec![pod("o2", "old", true, "2026-01-01T00:00:00Z")],
        );
        let (delete, surge) = rolling_update(&c, &nodes, nodes.len() as i64);
        assert!(delete.is_empty());
        assert_eq!(surge, ["n1"], "one surge pod at a time");
        nodes.insert("n1".to_string(), vec![old, new_ready]);
        let (delete, surge) = rolling_update(&c, &nodes, nodes.len() as i64);
        assert_eq!(
            (names(&delete), surge),
            (vec!["old"], vec!["n2".to_string()])
        );
    }

    #[test]
    fn rolling_update_respects_max_unavailable() {
        let d = rolling_ds(json!(1), json!(0));
        let c = ctx(&d);
        let old = |n: &str| pod(n, "old", true, "2026-01-01T00:00:00Z");
        let mut nodes: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
        for n in ["n1", "n2", "n3"] {
            nodes.insert(n.into(), vec![old(n)]);
        }
        // All available and old: one goes.
        let (delete, surge) = rolling_update(&c, &nodes, nodes.len() as i64);
        assert_eq!((names(&delete), surge.len()), (vec!["n1"], 0));
        // n1 replaced but its new pod is not ready yet: nothing more.
        nodes.insert(
            "n1".into(),
            vec![pod("n1-new", HASH, false, "2026-01-01T00:02:00Z")],
        );
        assert!(rolling_update(&c, &nodes, nodes.len() as i64).0.is_empty());
        // A node without a pod counts as unavailable too.
        nodes.insert("n1".into(), vec![]);
        assert!(rolling_update(&c, &nodes, nodes.len() as i64).0.is_empty());
        // Once it is available the next one goes.
        nodes.insert(
            "n1".into(),
            vec![pod("n1-new", HASH, true, "2026-01-01T00:02:00Z")],
        );
        assert_eq!(
            names(&rolling_update(&c, &nodes, nodes.len() as i64).0),
            ["n2"]
        );
        // Unavailable old pods are replaced regardless of the budget.
        nodes.insert(
            "n1".into(),
            vec![pod("n1-new", HASH, false, "2026-01-01T00:02:00Z")],
        );
        nodes.insert(
            "n3".into(),
            vec![pod("n3", "old", false, "2026-01-01T00:00:00Z")],
        );
        assert_eq!(
            names(&rolling_update(&c, &nodes, nodes.len() as i64).0),
            ["n3"]
        );
        // A percentage rounds up; 50% of 3 is 2.
        let d = rolling_ds(json!("50%"), json!(0));
        let c = ctx(&d);
        let mut nodes: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
        for n in ["n1", "n2", "n3"] {
            nodes.insert(n.into(), vec![old(n)]);
        }
        assert_eq!(
            names(&rolling_update(&c, &nodes, nodes.len() as i64).0),
            ["n1", "n2"]
        );
        // OnDelete never replaces.
        let d = ds(json!({"type": "OnDelete"}));
        assert!(
            rolling_update(&ctx(&d), &nodes, nodes.len() as i64)
                .0
                .is_empty()
        );
    }

    #[test]
    fn status_counts_the_oldest_pod_per_node() {
        let d = rolling_ds(json!(1), json!(0));
        let mut c = ctx(&d);
        let n1 = [
            pod("a", HASH, true, "2026-01-01T00:00:00Z"),
            pod("b", "old", false, "2026-01-01T00:00:09Z"),
        ];
        let n2 = [pod("c", "old", false, "2026-01-01T00:00:00Z")];
        let n3: [Stored; 0] = [];
        let n4 = [pod("d", HASH, true, "2026-01-01T00:00:00Z")];
        let nodes = [
            (true, &n1[..]),
            (true, &n2[..]),
            (true, &n3[..]),
            (false, &n4[..]),
        ];
        let counts_now = counts(&c, nodes);
        assert_eq!(
            counts_now,
            Counts {
                desired: 3,
                current: 2,
                misscheduled: 1,
                ready: 1,
                updated: 1,
                available: 1
            }
        );
        // minReadySeconds keeps a ready pod unavailable for a while.
        c.min_ready = 10 * 86_400;
        assert_eq!(counts(&c, nodes).available, 0);
        assert_eq!(int_or_percent(Some(&json!("10%")), 5, true), 1);
        assert_eq!(int_or_percent(Some(&json!("10%")), 5, false), 0);
    }
}
