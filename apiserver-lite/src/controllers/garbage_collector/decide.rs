//! What the garbage collector does with one dependent, from its owner references and what is known of
//! each owner (kube's `attemptToDeleteItem` and `classifyReferences`): pure logic, no IO.

use serde::Deserialize;

use crate::handlers::{FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Propagation};
use crate::resources::{RESOURCES, ResourceDef};

/// One `metadata.ownerReferences[]` entry, as far as the collector needs it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerRef {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub block_owner_deletion: Option<bool>,
}

impl OwnerRef {
    pub fn blocks(&self) -> bool {
        self.block_owner_deletion == Some(true)
    }
}

/// Where an owner reference points: the owner's resource and store key.
#[derive(Debug, Clone)]
pub struct Target {
    pub def: &'static ResourceDef,
    pub namespace: Option<String>,
    pub name: String,
    pub key: String,
}

impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        self.def.kind_id == other.def.kind_id && self.key == other.key
    }
}

/// The owner of a reference from an object in `namespace` (`None`: the object is cluster-scoped). A
/// namespaced owner is in the dependent's namespace, a cluster-scoped one is looked up cluster-wide.
/// `None` when the reference cannot be resolved: an apiVersion/kind this server does not serve, or a
/// namespaced owner of a cluster-scoped object (kube leaves such objects alone).
pub fn owner_target(namespace: Option<&str>, r: &OwnerRef) -> Option<Target> {
    let (group, version) = match r.api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", r.api_version.as_str()),
    };
    if r.name.is_empty() || r.name.contains('/') {
        return None;
    }
    let def = RESOURCES
        .iter()
        .find(|d| d.group == group && d.version == version && d.kind == r.kind)?;
    let namespace = if def.namespaced {
        Some(namespace?.to_string())
    } else {
        None
    };
    Some(Target {
        def,
        key: def.key(namespace.as_deref(), &r.name),
        namespace,
        name: r.name.clone(),
    })
}

/// What is stored under an owner reference's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerState {
    Absent,
    Present {
        uid: String,
        /// Being deleted in the foreground (`deletionTimestamp` and the `foregroundDeletion` finalizer):
        /// it waits for its dependents to go.
        deleting_dependents: bool,
    },
}

/// The collector's verdict on one dependent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do: no references, or every owner is there.
    Keep,
    /// A reference cannot be resolved (see [`owner_target`]): the object is left alone.
    Unresolvable,
    /// Some owners are there: drop the references (by owner uid) to the ones that are gone or that wait
    /// for their dependents' deletion.
    RemoveRefs(Vec<String>),
    /// No owner is left. `Foreground` when an owner waits for this object and it has dependents of its
    /// own, with `unblock` when one of those is itself deleting its dependents (a cycle: kube clears
    /// this object's `blockOwnerDeletion` first).
    Delete {
        propagation: Propagation,
        unblock: bool,
    },
}

/// What is known about the dependent itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct DependentFacts {
    /// It owns objects.
    pub has_dependents: bool,
    /// One of the objects it owns is deleting its dependents in the foreground.
    pub dependent_deleting_dependents: bool,
}

/// Classify each reference (`states[i]` is what `refs[i]` points at; `None` for an unresolvable one)
/// and decide, as kube's garbage collector does.
pub fn decide(
    refs: &[OwnerRef],
    states: &[Option<OwnerState>],
    finalizers: &[String],
    facts: DependentFacts,
) -> Verdict {
    if refs.is_empty() {
        return Verdict::Keep;
    }
    let mut solid = 0usize;
    let mut gone: Vec<String> = Vec::new();
    let mut waiting: Vec<String> = Vec::new();
    for (r, state) in refs.iter().zip(states) {
        match state {
            None => return Verdict::Unresolvable,
            Some(OwnerState::Present {
                uid,
                deleting_dependents,
            }) if *uid == r.uid => {
                if *deleting_dependents {
                    waiting.push(r.uid.clone());
                } else {
                    solid += 1;
                }
            }
            // Absent, or another object of that name (a different uid): the owner is gone.
            Some(_) => gone.push(r.uid.clone()),
        }
    }
    if states.len() < refs.len() {
        return Verdict::Unresolvable;
    }
    if solid > 0 {
        if gone.is_empty() && waiting.is_empty() {
            return Verdict::Keep;
        }
        let mut uids = gone;
        uids.extend(waiting);
        uids.dedup();
        return Verdict::RemoveRefs(uids);
    }
    if !waiting.is_empty() && facts.has_dependents {
        return Verdict::Delete {
            propagation: Propagation::Foreground,
            unblock: facts.dependent_deleting_dependents,
        };
    }
    // No owner waits for it: keep what the object's own finalizers ask for, else background.
    let propagation = finalizers
        .iter()
        .find_map(|f| match f.as_str() {
            FINALIZER_ORPHAN => Some(Propagation::Orphan),
            FINALIZER_FOREGROUND => Some(Propagation::Foreground),
            _ => None,
        })
        .unwrap_or(Propagation::Background);
    Verdict::Delete {
        propagation,
        unblock: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Kind;

    fn r(kind: &str, name: &str, uid: &str) -> OwnerRef {
        OwnerRef {
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            block_owner_deletion: Some(true),
        }
    }

    fn present(uid: &str) -> Option<OwnerState> {
        Some(OwnerState::Present {
            uid: uid.into(),
            deleting_dependents: false,
        })
    }

    fn waiting(uid: &str) -> Option<OwnerState> {
        Some(OwnerState::Present {
            uid: uid.into(),
            deleting_dependents: true,
        })
    }

    const NONE: DependentFacts = DependentFacts {
        has_dependents: false,
        dependent_deleting_dependents: false,
    };

    fn background() -> Verdict {
        Verdict::Delete {
            propagation: Propagation::Background,
            unblock: false,
        }
    }

    #[test]
    fn targets_follow_scope_and_served_kinds() {
        let cm = owner_target(Some("ns1"), &r("ConfigMap", "c", "u")).expect("configmap");
        assert_eq!(cm.key, "/registry/configmaps/ns1/c");
        assert_eq!(cm.def.kind_id, Kind::ConfigMap);
        // A cluster-scoped owner of a namespaced object is looked up cluster-wide.
        let node = owner_target(Some("ns1"), &r("Node", "n1", "u")).expect("node");
        assert_eq!(node.key, "/registry/nodes/n1");
        assert_eq!(node.namespace, None);
        let mut crb = r("ClusterRole", "admin", "u");
        crb.api_version = "rbac.authorization.k8s.io/v1".into();
        assert_eq!(
            owner_target(None, &crb).expect("clusterrole").key,
            "/registry/clusterroles/admin"
        );
        // A namespaced owner of a cluster-scoped object, unknown kinds and versions: unresolvable.
        assert_eq!(owner_target(None, &r("ConfigMap", "c", "u")), None);
        assert_eq!(owner_target(Some("a"), &r("Widget", "w", "u")), None);
        let mut old = r("ConfigMap", "c", "u");
        old.api_version = "v2".into();
        assert_eq!(owner_target(Some("a"), &old), None);
        assert_eq!(owner_target(Some("a"), &r("ConfigMap", "a/b", "u")), None);
    }

    #[test]
    fn owners_present_keep_the_object() {
        assert_eq!(decide(&[], &[], &[], NONE), Verdict::Keep);
        let refs = [r("ConfigMap", "a", "ua"), r("ConfigMap", "b", "ub")];
        assert_eq!(
            decide(&refs, &[present("ua"), present("ub")], &[], NONE),
            Verdict::Keep
        );
    }

    #[test]
    fn gone_or_replaced_owners() {
        let refs = [r("ConfigMap", "a", "ua")];
        assert_eq!(
            decide(&refs, &[Some(OwnerState::Absent)], &[], NONE),
            background()
        );
        // Same name, another uid: that owner is gone too.
        assert_eq!(decide(&refs, &[present("other")], &[], NONE), background());
        // The object's own finalizers choose how it goes.
        assert_eq!(
            decide(&refs, &[Some(OwnerState::Absent)], &["orphan".into()], NONE),
            Verdict::Delete {
                propagation: Propagation::Orphan,
                unblock: false
            }
        );
        assert_eq!(
            decide(
                &refs,
                &[Some(OwnerState::Absent)],
                &["x".into(), "foregroundDeletion".into()],
                NONE
            ),
            Verdict::Delete {
                propagation: Propagation::Foreground,
                unblock: false
            }
        );
    }

    #[test]
    fn a_remaining_owner_only_loses_the_dangling_refs() {
        let refs = [
            r("ConfigMap", "a", "ua"),
            r("ConfigMap", "b", "ub"),
            r("ConfigMap", "c", "uc"),
        ];
        assert_eq!(
            decide(
                &refs,
                &[Some(OwnerState::Absent), present("ub"), waiting("uc")],
                &[],
                NONE
            ),
            Verdict::RemoveRefs(vec!["ua".into(), "uc".into()])
        );
    }

    #[test]
    fn waiting_owners() {
        let refs = [r("ConfigMap", "a", "ua")];
        // Without dependents of its own: an ordinary (background) deletion.
        assert_eq!(decide(&refs, &[waiting("ua")], &[], NONE), background());
        let facts = DependentFacts {
            has_dependents: true,
            dependent_deleting_dependents: false,
        };
        assert_eq!(
            decide(&refs, &[waiting("ua")], &[], facts),
            Verdict::Delete {
                propagation: Propagation::Foreground,
                unblock: false
            }
        );
        let cycle = DependentFacts {
            has_dependents: true,
            dependent_deleting_dependents: true,
        };
        assert_eq!(
            decide(&refs, &[waiting("ua")], &[], cycle),
            Verdict::Delete {
                propagation: Propagation::Foreground,
                unblock: true
            }
        );
    }

    #[test]
    fn unresolvable_refs_leave_the_object_alone() {
        let refs = [r("ConfigMap", "a", "ua"), r("Widget", "w", "uw")];
        assert_eq!(
            decide(&refs, &[Some(OwnerState::Absent), None], &[], NONE),
            Verdict::Unresolvable
        );
        assert_eq!(
            decide(&refs, &[Some(OwnerState::Absent)], &[], NONE),
            Verdict::Unresolvable
        );
    }
}
