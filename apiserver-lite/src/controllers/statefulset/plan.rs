//! What one sync of a StatefulSet does to its pods, decided without IO (kube's
//! `defaultStatefulSetControl.updateStatefulSet`, one step at a time where kube is monotonic):
//!
//! 1. Every ordinal of `[start, start + replicas)` gets a pod; a failed or succeeded one is deleted (and
//!    made again, with the same name, once it is gone). With `OrderedReady` the first ordinal that is
//!    missing, terminating or not Running and Ready stops the sync: ordinal N is created only after
//!    0..N-1 are Ready. `Parallel` creates them all at once.
//! 2. Pods outside that range are deleted from the highest ordinal down; `OrderedReady` deletes one and
//!    waits for it to be gone (and for every other pod to be healthy) before the next.
//! 3. `RollingUpdate`: from the highest ordinal down to `partition`, the first pod not of the update
//!    revision is deleted (it comes back from the new template), one at a time, each after the pods above
//!    it are Ready again (`maxUnavailable` 1). `OnDelete` replaces nothing.

use std::collections::BTreeMap;

/// What the plan needs to know about one pod of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    pub ordinal: i64,
    pub name: String,
    /// Its `controller-revision-hash` label.
    pub revision: String,
    pub terminating: bool,
    /// Phase `Failed` or `Succeeded`: a StatefulSet's pods never should finish.
    pub finished: bool,
    /// Running and Ready (and, with `minReadySeconds`, available: kube's `isHealthy` in 1.32).
    pub healthy: bool,
}

/// The spec of the set as the plan sees it.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub start: i64,
    pub replicas: i64,
    pub parallel: bool,
    /// `Some(partition)` for `RollingUpdate`, `None` for `OnDelete`.
    pub partition: Option<i64>,
    pub update_revision: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the pod of this ordinal.
    Create(i64),
    /// Delete this pod (name).
    Delete(String),
}

/// The actions of one sync, in order.
pub fn plan(spec: &Spec, pods: &[PodState]) -> Vec<Action> {
    let monotonic = !spec.parallel;
    let end = spec.start + spec.replicas.max(0);
    let by_ordinal: BTreeMap<i64, &PodState> = pods.iter().map(|p| (p.ordinal, p)).collect();
    let mut actions = Vec::new();
    for ordinal in spec.start..end {
        match by_ordinal.get(&ordinal) {
            None => {
                actions.push(Action::Create(ordinal));
                if monotonic {
                    return actions;
                }
            }
            Some(p) if p.finished && !p.terminating => {
                actions.push(Action::Delete(p.name.clone()));
                if monotonic {
                    return actions;
                }
            }
            Some(p) if p.terminating || !p.healthy => {
                if monotonic {
                    return actions;
                }
            }
            Some(_) => {}
        }
    }
    // Condemned pods, highest ordinal first.
    let condemned: Vec<&PodState> = by_ordinal
        .range(..spec.start)
        .chain(by_ordinal.range(end..))
        .map(|(_, p)| *p)
        .collect();
    let first_unhealthy = condemned
        .iter()
        .find(|p| !p.healthy || p.terminating)
        .map(|p| p.ordinal);
    for p in condemned.iter().rev() {
        if p.terminating {
            if monotonic {
                return actions;
            }
            continue;
        }
        if monotonic && !p.healthy && first_unhealthy != Some(p.ordinal) {
            return actions;
        }
        actions.push(Action::Delete(p.name.clone()));
        if monotonic {
            return actions;
        }
    }
    let Some(partition) = spec.partition else {
        return actions;
    };
    let floor = spec.start + partition.max(0);
    for ordinal in (floor..end).rev() {
        let Some(p) = by_ordinal.get(&ordinal) else {
            continue;
        };
        if p.revision != spec.update_revision && !p.terminating {
            if !actions.contains(&Action::Delete(p.name.clone())) {
                actions.push(Action::Delete(p.name.clone()));
            }
            return actions;
        }
        if !p.healthy {
            return actions;
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ordinal: i64, revision: &str, healthy: bool) -> PodState {
        PodState {
            ordinal,
            name: format!("web-{ordinal}"),
            revision: revision.into(),
            terminating: false,
            finished: false,
            healthy,
        }
    }

    fn spec(replicas: i64, parallel: bool) -> Spec<'static> {
        Spec {
            start: 0,
            replicas,
            parallel,
            partition: Some(0),
            update_revision: "web-new",
        }
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time() {
        let s = spec(3, false);
        assert_eq!(plan(&s, &[]), [Action::Create(0)]);
        // web-0 exists but is not Ready: wait.
        assert_eq!(plan(&s, &[pod(0, "web-new", false)]), []);
        assert_eq!(plan(&s, &[pod(0, "web-new", true)]), [Action::Create(1)]);
        let mut terminating = pod(1, "web-new", true);
        terminating.terminating = true;
        assert_eq!(plan(&s, &[pod(0, "web-new", true), terminating]), []);
    }

    #[test]
    fn parallel_creates_all_and_honours_ordinals_start() {
        let mut s = spec(3, true);
        s.start = 5;
        assert_eq!(
            plan(&s, &[pod(6, "web-new", false)]),
            [Action::Create(5), Action::Create(7)]
        );
    }

    #[test]
    fn failed_pods_are_deleted_to_be_made_again() {
        let s = spec(2, false);
        let mut failed = pod(0, "web-new", false);
        failed.finished = true;
        assert_eq!(
            plan(&s, &[failed.clone(), pod(1, "web-new", true)]),
            [Action::Delete("web-0".into())]
        );
        failed.terminating = true;
        assert_eq!(plan(&s, &[failed, pod(1, "web-new", true)]), []);
    }

    #[test]
    fn scale_down_goes_from_the_highest_ordinal() {
        let s = spec(1, false);
        let pods: Vec<PodState> = (0..4).map(|i| pod(i, "web-new", true)).collect();
        assert_eq!(plan(&s, &pods), [Action::Delete("web-3".into())]);
        let mut waiting = pods.clone();
        waiting[3].terminating = true;
        assert_eq!(plan(&s, &waiting), []);
        // An unhealthy pod in the range blocks scaling down in OrderedReady.
        let mut unhealthy = pods.clone();
        unhealthy[0].healthy = false;
        assert_eq!(plan(&s, &unhealthy), []);
        // Parallel deletes every condemned pod at once.
        let p = spec(1, true);
        assert_eq!(
            plan(&p, &pods),
            [
                Action::Delete("web-3".into()),
                Action::Delete("web-2".into()),
                Action::Delete("web-1".into())
            ]
        );
    }

    #[test]
    fn rolling_update_goes_down_to_the_partition() {
        let mut s = spec(4, false);
        s.partition = Some(2);
        let old: Vec<PodState> = (0..4).map(|i| pod(i, "web-old", true)).collect();
        assert_eq!(plan(&s, &old), [Action::Delete("web-3".into())]);
        // web-3 is back on the new revision but not Ready yet: wait.
        let mut step = old.clone();
        step[3] = pod(3, "web-new", false);
        assert_eq!(plan(&s, &step), []);
        step[3].healthy = true;
        assert_eq!(plan(&s, &step), [Action::Delete("web-2".into())]);
        step[2] = pod(2, "web-new", true);
        // Below the partition nothing is replaced.
        assert_eq!(plan(&s, &step), []);
        // OnDelete replaces nothing.
        s.partition = None;
        assert_eq!(plan(&s, &old), []);
    }
}
