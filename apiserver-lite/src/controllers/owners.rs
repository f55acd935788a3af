//! What the workload controllers share: controller ownerReferences (kube's `ControllerRef`), the
//! `metav1.LabelSelector` of a ReplicaSet or Deployment, and the stored objects they follow.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};

use serde_json::{Value, json};

use crate::selectors::{LabelReq, LabelSelector};
use crate::store::{KeyValue, Revision};

/// `(namespace, name)`.
pub type Key = (String, String);

/// `/registry/<resource>/<ns>/<name>` → `(ns, name)`.
pub fn key_of(prefix: &str, kv: &KeyValue) -> Option<Key> {
    let (ns, name) = kv.key.strip_prefix(prefix)?.split_once('/')?;
    Some((ns.to_string(), name.to_string()))
}

/// A stored object as JSON (what is written back, so unknown fields survive) with its revision. The value
/// is shared: every controller following the same key sees one parsed copy per revision (see [`shared`]).
#[derive(Debug, Clone)]
pub struct Stored {
    pub value: Arc<Value>,
    pub revision: Revision,
}

/// One parsed value per stored key and revision for all the controllers of this process: the ReplicaSet,
/// Deployment, DaemonSet, StatefulSet, Job and CronJob controllers each follow every pod, and would
/// otherwise each hold their own copy of it (kube's controllers share informers for the same reason).
/// Entries hold weak references, so a value lives only as long as some controller keeps it.
fn shared(kv: &KeyValue) -> Option<Arc<Value>> {
    static POOL: Mutex<Option<Pool>> = Mutex::new(None);
    let lock = || POOL.lock().unwrap_or_else(|e| e.into_inner());
    // The bytes' hash too: tests run several stores in one process, where a key and revision may repeat.
    let digest = {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        kv.value.hash(&mut h);
        h.finish()
    };
    let found = |pool: &Pool| {
        let (revision, hash, weak) = pool.values.get(&kv.key)?;
        (*revision == kv.mod_revision && *hash == digest).then(|| weak.upgrade())?
    };
    if let Some(value) = lock().as_ref().and_then(found) {
        return Some(value);
    }
    // Parsed outside the lock, so controllers following different keys do not wait for each other.
    let value = match serde_json::from_slice::<Value>(&kv.value) {
        Ok(mut value) if value.is_object() => {
            // The stored bytes carry no resourceVersion: it is the key's revision. Writes send it
            // back, so they fail with a conflict instead of overwriting a newer version.
            crate::handlers::set_rv(&mut value, kv.mod_revision);
            Arc::new(value)
        }
        Ok(_) => return None,
        Err(err) => {
            tracing::warn!(key = %kv.key, error = %err, "cannot parse stored object");
            return None;
        }
    };
    let mut guard = lock();
    let pool = guard.get_or_insert_with(Pool::default);
    // Another controller may have parsed the same revision meanwhile: share its value.
    if let Some(theirs) = found(pool) {
        return Some(theirs);
    }
    pool.values.insert(
        kv.key.clone(),
        (kv.mod_revision, digest, Arc::downgrade(&value)),
    );
    pool.inserts += 1;
    if pool.inserts.is_multiple_of(1024) {
        pool.values
            .retain(|_, (_, _, weak)| weak.strong_count() > 0);
    }
    Some(value)
}

#[derive(Default)]
struct Pool {
    /// Key → (revision, hash of the stored bytes, the value).
    values: HashMap<String, (Revision, u64, Weak<Value>)>,
    inserts: u64,
}

impl Stored {
    pub fn parse(kv: &KeyValue) -> Option<Stored> {
        Some(Stored {
            value: shared(kv)?,
            revision: kv.mod_revision,
        })
    }

    pub fn uid(&self) -> &str {
        str_at(&self.value, "/metadata/uid")
    }

    pub fn name(&self) -> &str {
        str_at(&self.value, "/metadata/name")
    }

    pub fn deleting(&self) -> bool {
        self.value
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        labels_at(&self.value, "/metadata/labels")
    }

    /// The controller ownerReference's uid.
    pub fn controller_uid(&self) -> Option<&str> {
        controller_ref(&self.value)?.get("uid")?.as_str()
    }
}

/// What one list-watch change did to a controller's cached view of a kind.
pub enum Applied {
    /// The view was replaced by a full listing.
    Reset,
    /// `key` went from `old` to `new`; either may be absent (a value that does not parse counts as absent).
    Changed {
        key: Key,
        old: Option<Stored>,
        new: Option<Stored>,
    },
}

/// Apply `change` to `view`, the objects under `prefix` by `(namespace, name)`. `None`: a key outside the
/// prefix's shape, nothing changed.
pub fn apply(
    view: &mut BTreeMap<Key, Stored>,
    prefix: &str,
    change: super::reflector::Change,
) -> Option<Applied> {
    use super::reflector::Change;
    match change {
        Change::Reset(items) => {
            *view = items
                .iter()
                .filter_map(|kv| Some((key_of(prefix, kv)?, Stored::parse(kv)?)))
                .collect();
            Some(Applied::Reset)
        }
        Change::Put(kv) => {
            let key = key_of(prefix, &kv)?;
            let new = Stored::parse(&kv);
            let old = match &new {
                Some(value) => view.insert(key.clone(), value.clone()),
                None => view.remove(&key),
            };
            Some(Applied::Changed { key, old, new })
        }
        Change::Delete(kv) => {
            let key = key_of(prefix, &kv)?;
            let old = view.remove(&key);
            Some(Applied::Changed {
                key,
                old,
                new: None,
            })
        }
    }
}

/// The sets (ReplicaSets, StatefulSets, DaemonSets) of `ns` that `child` concerns: its controller, or for an
/// orphan every set whose `spec.selector` picks it (candidates for adoption).
pub fn sets_for(sets: &BTreeMap<Key, Stored>, ns: &str, child: &Stored) -> Vec<Key> {
    let owner = child.controller_uid();
    sets.range((ns.to_string(), String::new())..)
        .take_while(|((set_ns, _), _)| set_ns == ns)
        .filter(|(_, set)| match owner {
            Some(uid) => uid == set.uid(),
            None => Selector::parse(set.value.pointer("/spec/selector"))
                .is_some_and(|s| s.matches(&child.labels())),
        })
        .map(|(key, _)| key.clone())
        .collect()
}

/// The set of `ns` that controls `child` (by uid), if any.
pub fn controller_in(sets: &BTreeMap<Key, Stored>, ns: &str, child: &Stored) -> Option<Key> {
    let uid = child.controller_uid()?;
    sets.range((ns.to_string(), String::new())..)
        .take_while(|((set_ns, _), _)| set_ns == ns)
        .find(|(_, set)| set.uid() == uid)
        .map(|(key, _)| key.clone())
}

/// Seconds before retrying a sync that failed `failures` times in a row (1, 2, 4, … 256); changes to
/// the object retry at once whatever this says.
pub fn backoff_secs(failures: u32) -> i64 {
    1 << failures.saturating_sub(1).min(8)
}

/// Keep in `slot` the highest store revision written so far (`object` as a write returned it).
pub fn note_write(slot: &mut Option<Revision>, object: &Value) {
    if let Ok(rev) = str_at(object, "/metadata/resourceVersion").parse::<Revision>() {
        *slot = Some(slot.map_or(rev, |s| s.max(rev)));
    }
}

pub fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub fn int_at(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// A string map (labels, annotations) at `pointer`; non-string values are skipped.
pub fn labels_at(v: &Value, pointer: &str) -> BTreeMap<String, String> {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The ownerReference with `controller: true`.
pub fn controller_ref(object: &Value) -> Option<&Value> {
    object
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

/// The controller ownerReference a controller puts on what it makes or adopts.
pub fn controller_owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": str_at(owner, "/apiVersion"),
        "kind": str_at(owner, "/kind"),
        "name": str_at(owner, "/metadata/name"),
        "uid": str_at(owner, "/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// `object` with `owner` as its controller (adoption); `None` if it already has a controller.
pub fn with_controller(object: &Value, owner: &Value) -> Option<Value> {
    if controller_ref(object).is_some() {
        return None;
    }
    let mut next = object.clone();
    let meta = super::object::child(&mut next, "metadata")?;
    let refs = meta
        .entry("ownerReferences")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !refs.is_array() {
        *refs = Value::Array(Vec::new());
    }
    refs.as_array_mut()?.push(controller_owner_ref(owner));
    Some(next)
}

/// `object` without the ownerReferences to `uid` (release).
pub fn without_owner(object: &Value, uid: &str) -> Value {
    let mut next = object.clone();
    if let Some(meta) = next.get_mut("metadata").and_then(Value::as_object_mut)
        && let Some(refs) = meta
            .get_mut("ownerReferences")
            .and_then(Value::as_array_mut)
    {
        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
        if refs.is_empty() {
            meta.remove("ownerReferences");
        }
    }
    next
}

/// Adopt (`adopt`) or release the object `name` of `def` for `owner`, on a fresh read and again after a
/// conflict (its status may change meanwhile). `Some(object)` as written (or, adopting, when it is the
/// owner's already); `None` when there was nothing to do.
pub async fn rewrite_owner(
    api: &crate::handlers::Api,
    def: &crate::resources::ResourceDef,
    ns: &str,
    name: &str,
    owner: &Value,
    adopt: bool,
) -> crate::status::ApiResult<Option<Value>> {
    let owner_uid = str_at(owner, "/metadata/uid");
    let opts = super::object::write_opts("kube-controller-manager");
    for _ in 0..5 {
        let current = match api.get(def, Some(ns), name).await {
            Ok(v) => v,
            Err(e) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        };
        let controller = controller_ref(&current)
            .and_then(|r| r.get("uid"))
            .and_then(Value::as_str);
        let next = match (adopt, controller) {
            (true, Some(uid)) => return Ok((uid == owner_uid).then_some(current)),
            (true, None) => {
                if current
                    .pointer("/metadata/deletionTimestamp")
                    .is_some_and(|t| !t.is_null())
                {
                    return Ok(None);
                }
                match with_controller(&current, owner) {
                    Some(next) => next,
                    None => return Ok(None),
                }
            }
            (false, Some(uid)) if uid == owner_uid => without_owner(&current, owner_uid),
            (false, _) => return Ok(None),
        };
        match api
            .update(def, Some(ns), name, None, next, &[], &opts)
            .await
        {
            Ok((written, _, _)) => return Ok(Some(written)),
            Err(e) if e.code == 409 => continue,
            Err(e) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Err(crate::status::ApiError::modified(
        def.group, def.plural, name,
    ))
}

/// A `metav1.LabelSelector` (`matchLabels` and `matchExpressions`).
#[derive(Debug, Clone)]
pub struct Selector(LabelSelector);

impl Selector {
    /// `None` when missing, malformed or with an unknown operator; an empty selector is `Some` (see
    /// [`Selector::is_empty`]).
    pub fn parse(selector: Option<&Value>) -> Option<Selector> {
        let selector = selector?.as_object()?;
        let mut reqs = Vec::new();
        if let Some(labels) = selector.get("matchLabels").filter(|v| !v.is_null()) {
            for (k, v) in labels.as_object()? {
                reqs.push(LabelReq::Eq(k.clone(), v.as_str()?.to_string()));
            }
        }
        if let Some(exprs) = selector.get("matchExpressions").filter(|v| !v.is_null()) {
            for e in exprs.as_array()? {
                let key = e.get("key")?.as_str()?.to_string();
                let values: Vec<String> = match e.get("values") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(vs) => vs
                        .as_array()?
                        .iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect::<Option<_>>()?,
                };
                reqs.push(match e.get("operator")?.as_str()? {
                    "In" => LabelReq::In(key, values),
                    "NotIn" => LabelReq::NotIn(key, values),
                    "Exists" => LabelReq::Exists(key),
                    "DoesNotExist" => LabelReq::NotExists(key),
                    _ => return None,
                });
            }
        }
        Some(Selector(LabelSelector(reqs)))
    }

    /// An empty selector would select everything; the controllers select nothing with it instead (kube's
    /// validation refuses it for apps/v1).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.is_empty() && self.0.matches(labels)
    }
}

/// A RFC 3339 time as a UNIX timestamp in seconds.
pub fn seconds(time: &str) -> Option<i64> {
    time.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// What a claim decided for one dependent (kube's `ControllerRefManager`).
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours and selected.
    Owned,
    /// An orphan the selector picks: add our controller reference.
    Adopt,
    /// Ours but no longer selected: drop our reference.
    Release,
    /// Someone else's, or not for us.
    Ignore,
}

/// Decide about `dependent` for the owner with `owner_uid` (being deleted when `owner_deleting`).
pub fn claim(
    owner_uid: &str,
    owner_deleting: bool,
    selector: &Selector,
    dependent: &Stored,
) -> Claim {
    let selected = selector.matches(&dependent.labels());
    match dependent.controller_uid() {
        Some(uid) if uid == owner_uid => {
            if selected || owner_deleting {
                Claim::Owned
            } else {
                Claim::Release
            }
        }
        Some(_) => Claim::Ignore,
        None if selected && !owner_deleting && !dependent.deleting() => Claim::Adopt,
        None => Claim::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(labels: Value, owner: Option<&str>) -> Stored {
        let mut value = json!({"metadata": {"name": "p", "uid": "u1", "labels": labels}});
        if let Some(uid) = owner {
            value["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": true}]);
        }
        Stored {
            value: std::sync::Arc::new(value),
            revision: 1,
        }
    }

    /// Controllers following the same key share one parsed value per revision; a new revision is parsed
    /// anew, and a value nobody holds any more is not kept alive by the pool.
    #[test]
    fn stored_values_are_shared_per_revision() {
        let kv = |rev: i64, phase: &str| KeyValue {
            key: "/registry/pods/default/shared-test".into(),
            value: serde_json::to_vec(
                &json!({"metadata": {"name": "shared-test"}, "status": {"phase": phase}}),
            )
            .expect("json"),
            create_revision: 1,
            mod_revision: rev,
        };
        let a = Stored::parse(&kv(7, "Pending")).expect("parsed");
        let b = Stored::parse(&kv(7, "Pending")).expect("parsed");
        assert!(Arc::ptr_eq(&a.value, &b.value));
        assert_eq!(str_at(&a.value, "/metadata/resourceVersion"), "7");
        let c = Stored::parse(&kv(8, "Running")).expect("parsed");
        assert!(!Arc::ptr_eq(&a.value, &c.value));
        assert_eq!(str_at(&c.value, "/status/phase"), "Running");
        let weak = Arc::downgrade(&c.value);
        drop(c);
        assert!(
            weak.upgrade().is_none(),
            "the pool holds no strong reference"
        );
        assert!(
            Stored::parse(&KeyValue {
                value: b"[1]".to_vec(),
                ..kv(9, "")
            })
            .is_none()
        );
    }

    #[test]
    fn selectors_follow_metav1() {
        let sel = Selector::parse(Some(&json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                 {"key": "canary", "operator": "DoesNotExist"}]})))
        .expect("valid");
        let labels = |l: Value| obj(l, None).labels();
        assert!(sel.matches(&labels(json!({"app": "web", "tier": "a"}))));
        assert!(!sel.matches(&labels(json!({"app": "web", "tier": "c"}))));
        assert!(!sel.matches(&labels(json!({"app": "web", "tier": "a", "canary": "1"}))));
        assert!(
            Selector::parse(Some(
                &json!({"matchExpressions": [{"key": "a", "operator": "Near"}]})
            ))
            .is_none()
        );
        assert!(Selector::parse(Some(&json!({"matchLabels": {"a": 1}}))).is_none());
        let empty = Selector::parse(Some(&json!({}))).expect("empty is valid");
        assert!(empty.is_empty() && !empty.matches(&labels(json!({"app": "web"}))));
    }

    #[test]
    fn claims_adopt_release_and_ignore() {
        let sel = Selector::parse(Some(&json!({"matchLabels": {"app": "web"}}))).expect("valid");
        let web = json!({"app": "web"});
        assert_eq!(
            claim("me", false, &sel, &obj(web.clone(), None)),
            Claim::Adopt
        );
        assert_eq!(
            claim("me", true, &sel, &obj(web.clone(), None)),
            Claim::Ignore
        );
        assert_eq!(
            claim("me", false, &sel, &obj(web.clone(), Some("me"))),
            Claim::Owned
        );
        assert_eq!(
            claim("me", false, &sel, &obj(web, Some("other"))),
            Claim::Ignore
        );
        let db = json!({"app": "db"});
        assert_eq!(
            claim("me", false, &sel, &obj(db.clone(), Some("me"))),
            Claim::Release
        );
        assert_eq!(
            claim("me", true, &sel, &obj(db.clone(), Some("me"))),
            Claim::Owned
        );
        assert_eq!(claim("me", false, &sel, &obj(db, None)), Claim::Ignore);
        let adopted = with_controller(
            &obj(json!({}), None).value,
            &json!({"apiVersion": "apps/v1",
            "kind": "ReplicaSet", "metadata": {"name": "rs", "uid": "me"}}),
        )
        .expect("orphan");
        assert_eq!(
            adopted["metadata"]["ownerReferences"][0]["controller"],
            true
        );
        assert!(with_controller(&adopted, &json!({})).is_none());
        let released = without_owner(&adopted, "me");
        assert!(released["metadata"].get("ownerReferences").is_none());
    }
}
