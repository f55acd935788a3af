//! The ControllerRevisions of DaemonSets and StatefulSets (kube's `controller_history` as the daemon and
//! stateful-set controllers use it): one revision `<set>-<hash>` per template the set has had, its `data`
//! the patch that brings the template back (`{"spec":{"template":{…,"$patch":"replace"}}}`, what
//! `kubectl rollout undo` sends), numbered 1 + the highest revision of the set; a template that comes back
//! has its revision renumbered instead of a new one made. Old revisions no pod uses are kept up to
//! `spec.revisionHistoryLimit`.
//!
//! Both controllers follow the revisions with a reflector; that view only decides whether anything is to
//! be done. What is written is decided again over a fresh listing, so a view that lags behind the
//! controller's own writes never numbers a revision twice.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::controllers::deployment::template::{equal_ignore_hash, pod_template_hash};
use crate::controllers::object::write_opts;
use crate::controllers::owners::{self, Key, Stored, int_at, str_at};
use crate::handlers::{Api, DeleteOpts};
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};

/// The label kube puts on a DaemonSet's revisions and pods.
pub const HASH_LABEL: &str = "controller-revision-hash";
/// kube's default `revisionHistoryLimit`.
const DEFAULT_LIMIT: i64 = 10;

/// The revision the set's current template should have.
pub struct Wanted<'a> {
    pub set: &'a Value,
    /// `<set>-<hash>`.
    pub name: String,
    /// The template hash (kept as a label on a DaemonSet's revisions), `None` for a StatefulSet's.
    pub hash_label: Option<&'a str>,
}

/// The change the history needs for the current template.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The newest revision is the current template's.
    Nothing,
    /// A new revision (the object to create).
    Create(Value),
    /// An older revision's template came back: renumber it (name, new revision).
    Renumber(String, i64),
}

/// kube's `getPatch`: the set's template as a strategic merge patch that replaces it.
pub fn patch(set: &Value) -> Value {
    let mut template = set
        .pointer("/spec/template")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    template.insert("$patch".into(), json!("replace"));
    json!({"spec": {"template": template}})
}

/// The template a revision holds (its patch without the directive).
pub fn template_of(revision: &Value) -> Option<Value> {
    let mut template = revision
        .pointer("/data/spec/template")?
        .as_object()?
        .clone();
    template.remove("$patch");
    Some(Value::Object(template))
}

fn number(revision: &Value) -> i64 {
    int_at(revision, "/revision").unwrap_or(0)
}

/// The revisions among `revisions` (one namespace or more) whose controller is `set`, oldest first.
pub fn owned<'a>(revisions: impl IntoIterator<Item = &'a Stored>, set: &Value) -> Vec<&'a Stored> {
    let uid = str_at(set, "/metadata/uid");
    let mut mine: Vec<&Stored> = revisions
        .into_iter()
        .filter(|r| r.controller_uid() == Some(uid))
        .collect();
    mine.sort_by(|a, b| {
        number(&a.value)
            .cmp(&number(&b.value))
            .then_with(|| a.name().cmp(b.name()))
    });
    mine
}

/// The newest of `owned` (oldest first) whose template is the set's current one, both with kube's template
/// defaults (kube's `FindEqualRevisions`, which compares revisions as read from etcd, so defaulted). A
/// revision stored before a default was added keeps serving the set: an update that only defaults the
/// set's template starts no rollout.
pub fn equal_revision<'a>(owned: &[&'a Stored], set: &Value) -> Option<&'a Stored> {
    let template = set.pointer("/spec/template");
    owned
        .iter()
        .rev()
        .find(|r| template_of(&r.value).is_some_and(|t| equal_ignore_hash(Some(&t), template)))
        .copied()
}

/// The revisions of the namespace `ns` in a controller's view.
pub fn in_namespace<'a>(
    view: &'a BTreeMap<Key, Stored>,
    ns: &str,
) -> impl Iterator<Item = &'a Stored> {
    view.range((ns.to_string(), String::new())..)
        .take_while(move |((rev_ns, _), _)| rev_ns == ns)
        .map(|(_, r)| r)
}

/// The new ControllerRevision of the current template (kube's `snapshot` / `newRevision`): the template's
/// labels (and the hash label for a DaemonSet), the set's annotations (`kubernetes.io/change-cause` is
/// what `kubectl rollout history` shows), the set as controller.
pub fn new_revision(wanted: &Wanted<'_>, revision: i64) -> Value {
    let set = wanted.set;
    let mut labels = set
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(hash) = wanted.hash_label {
        labels.insert(HASH_LABEL.into(), json!(hash));
    }
    let mut meta = Map::new();
    meta.insert("name".into(), json!(wanted.name));
    meta.insert(
        "namespace".into(),
        json!(str_at(set, "/metadata/namespace")),
    );
    meta.insert("labels".into(), Value::Object(labels));
    if let Some(annotations) = set
        .pointer("/metadata/annotations")
        .filter(|a| a.as_object().is_some_and(|m| !m.is_empty()))
    {
        meta.insert("annotations".into(), annotations.clone());
    }
    meta.insert(
        "ownerReferences".into(),
        json!([owners::controller_owner_ref(set)]),
    );
    json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": meta,
        "data": patch(set), "revision": revision})
}

/// What the history needs (kube's `constructHistory` / `getStatefulSetRevisions`), over the set's
/// revisions oldest first.
pub fn step(wanted: &Wanted<'_>, owned: &[&Stored]) -> Step {
    let max = owned.iter().map(|r| number(&r.value)).max().unwrap_or(0);
    match owned.iter().find(|r| r.name() == wanted.name) {
        Some(r) if number(&r.value) == max => Step::Nothing,
        Some(r) => Step::Renumber(r.name().to_string(), max + 1),
        None => Step::Create(new_revision(wanted, max + 1)),
    }
}

/// The revisions to delete (kube's `truncateHistory`): those not in `live` (the current and update
/// revisions, those of existing pods), oldest first, beyond the `revisionHistoryLimit` newest.
pub fn to_truncate(set: &Value, owned: &[&Stored], live: &BTreeSet<String>) -> Vec<String> {
    let limit = int_at(set, "/spec/revisionHistoryLimit")
        .unwrap_or(DEFAULT_LIMIT)
        .max(0) as usize;
    let old: Vec<&Stored> = owned
        .iter()
        .copied()
        .filter(|r| !live.contains(r.name()))
        .collect();
    let surplus = old.len().saturating_sub(limit);
    old[..surplus]
        .iter()
        .map(|r| r.name().to_string())
        .collect()
}

/// Whether `existing` holds the template `wanted` asks for (a revision of that name that does not is a
/// hash collision).
fn same_template(existing: &Value, wanted: &Wanted<'_>) -> bool {
    let template = wanted.set.pointer("/spec/template").unwrap_or(&Value::Null);
    template_of(existing)
        .is_some_and(|t| pod_template_hash(&t, None) == pod_template_hash(template, None))
}

/// The set's revisions, read from the store.
async fn list_owned(api: &Api, set: &Value) -> ApiResult<Vec<Stored>> {
    let def = by_kind(Kind::ControllerRevision);
    let ns = str_at(set, "/metadata/namespace");
    let (items, _) = api
        .store
        .list(&def.prefix(Some(ns)))
        .await
        .map_err(|e| ApiError::from_store(e, def.group, def.plural, ""))?;
    let all: Vec<Stored> = items.iter().filter_map(Stored::parse).collect();
    Ok(owned(&all, set).into_iter().cloned().collect())
}

/// Bring the history up to date for the current template, then truncate it; `live` names the revisions
/// in use besides `wanted`. Only writes when the controller's `view` of the set's revisions (oldest first)
/// says something is to be done.
pub async fn sync(
    api: &Api,
    wanted: &Wanted<'_>,
    view: &[&Stored],
    live: &BTreeSet<String>,
) -> ApiResult<()> {
    let mut live = live.clone();
    live.insert(wanted.name.clone());
    if step(wanted, view) == Step::Nothing && to_truncate(wanted.set, view, &live).is_empty() {
        return Ok(());
    }
    let fresh = list_owned(api, wanted.set).await?;
    let fresh: Vec<&Stored> = fresh.iter().collect();
    let def = by_kind(Kind::ControllerRevision);
    let ns = str_at(wanted.set, "/metadata/namespace");
    let opts = write_opts(super::MANAGER);
    match step(wanted, &fresh) {
        Step::Nothing => {}
        Step::Create(revision) => match api.create(def, Some(ns), revision, &[], &opts).await {
            Ok(_) => {}
            Err(e) if e.code == 409 => {
                // Not the set's (it is not among the fresh listing) or made meanwhile.
                let existing = api.get(def, Some(ns), &wanted.name).await?;
                let uid = str_at(wanted.set, "/metadata/uid");
                let ours =
                    owners::controller_ref(&existing).is_some_and(|r| str_at(r, "/uid") == uid);
                if !ours || !same_template(&existing, wanted) {
                    return Err(ApiError::internal(format!(
                        "controller revision {ns}/{} exists and is not the current template's",
                        wanted.name
                    )));
                }
            }
            Err(e) => return Err(e),
        },
        Step::Renumber(name, revision) => {
            let mut existing = api.get(def, Some(ns), &name).await?;
            if number(&existing) < revision {
                existing["revision"] = json!(revision);
                api.update(def, Some(ns), &name, None, existing, &[], &opts)
                    .await?;
            }
        }
    }
    for name in to_truncate(wanted.set, &fresh, &live) {
        match api
            .delete(def, Some(ns), &name, &DeleteOpts::default(), false)
            .await
        {
            Ok(_) => {}
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn set(image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "ns", "uid": "ds-uid",
                "annotations": {"kubernetes.io/change-cause": "set image"}},
            "spec": {"revisionHistoryLimit": 1, "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    fn stored(name: &str, revision: i64, owner: &str) -> Stored {
        Stored {
            value: Arc::new(json!({"metadata": {"name": name, "namespace": "ns",
                "ownerReferences": [{"uid": owner, "controller": true}]}, "revision": revision})),
            revision: 1,
        }
    }

    #[test]
    fn the_patch_replaces_the_template_and_gives_it_back() {
        let s = set("a");
        let p = patch(&s);
        assert_eq!(p["spec"]["template"]["$patch"], "replace");
        let wanted = Wanted {
            set: &s,
            name: "agent-h".into(),
            hash_label: Some("h"),
        };
        let r = new_revision(&wanted, 4);
        assert_eq!(template_of(&r).as_ref(), s.pointer("/spec/template"));
        assert_eq!(r["revision"], 4);
        assert_eq!(
            r["metadata"]["labels"],
            json!({"app": "agent", "controller-revision-hash": "h"})
        );
        assert_eq!(
            r["metadata"]["annotations"]["kubernetes.io/change-cause"],
            "set image"
        );
        assert_eq!(r["metadata"]["ownerReferences"][0]["uid"], "ds-uid");
        assert!(same_template(&r, &wanted));
        assert!(!same_template(
            &r,
            &Wanted {
                set: &set("b"),
                ..wanted
            }
        ));
    }

    #[test]
    fn a_revision_stored_before_a_default_still_equals_its_defaulted_template() {
        let mut before = set("a");
        before["spec"]["template"]["spec"]["volumes"] =
            json!([{"name": "cfg", "configMap": {"name": "c"}}]);
        let revision = |name: &str, number: i64, s: &Value| Stored {
            value: Arc::new(new_revision(
                &Wanted {
                    set: s,
                    name: name.into(),
                    hash_label: Some("h"),
                },
                number,
            )),
            revision: 1,
        };
        let old = revision("agent-old", 1, &before);
        let other = revision("agent-other", 2, &set("b"));
        let mut after = before.clone();
        crate::resources::workloads::default_template(&mut after["spec"]["template"]);
        assert_eq!(
            after["spec"]["template"]["spec"]["volumes"][0]["configMap"]["defaultMode"],
            420
        );
        let found = equal_revision(&[&old, &other], &after).map(Stored::name);
        assert_eq!(found, Some("agent-old"));
        assert_eq!(
            equal_revision(&[&old, &other], &set("b")).map(Stored::name),
            Some("agent-other")
        );
        assert!(equal_revision(&[&old, &other], &set("c")).is_none());
    }

    #[test]
    fn steps_number_and_renumber() {
        let s = set("a");
        let wanted = Wanted {
            set: &s,
            name: "agent-h1".into(),
            hash_label: None,
        };
        assert!(matches!(step(&wanted, &[]), Step::Create(r) if r["revision"] == 1));
        let (h1, h2, other) = (
            stored("agent-h1", 1, "ds-uid"),
            stored("agent-h2", 2, "ds-uid"),
            stored("agent-h9", 7, "someone"),
        );
        let all = [h2.clone(), other, h1.clone()];
        let mine = owned(&all, &s);
        assert_eq!(
            mine.iter().map(|r| r.name()).collect::<Vec<_>>(),
            ["agent-h1", "agent-h2"]
        );
        // The template of revision 1 is back: it becomes revision 3.
        assert_eq!(step(&wanted, &mine), Step::Renumber("agent-h1".into(), 3));
        assert_eq!(step(&wanted, &[&h1]), Step::Nothing);
        let new = Wanted {
            name: "agent-h3".into(),
            ..wanted
        };
        assert!(matches!(step(&new, &mine), Step::Create(r) if r["revision"] == 3));
    }

    #[test]
    fn truncation_keeps_live_and_the_newest_old_ones() {
        let s = set("a");
        let revs: Vec<Stored> = (1..=4)
            .map(|n| stored(&format!("agent-h{n}"), n, "ds-uid"))
            .collect();
        let mine: Vec<&Stored> = revs.iter().collect();
        let live: BTreeSet<String> = ["agent-h1".to_string(), "agent-h4".to_string()].into();
        // Old and unused: h2, h3; the limit keeps one, the newest.
        assert_eq!(to_truncate(&s, &mine, &live), ["agent-h2"]);
        let mut unlimited = s.clone();
        unlimited["spec"]
            .as_object_mut()
            .map(|m| m.remove("revisionHistoryLimit"));
        assert!(to_truncate(&unlimited, &mine, &live).is_empty());
    }
}
