//! The ephemeral volume controller (kube-controller-manager's `ephemeral-volume` controller): for every
//! pod that is not being deleted, each generic ephemeral volume (`spec.volumes[].ephemeral`) gets its
//! claim `<pod>-<volume>` in the pod's namespace, made from `volumeClaimTemplate` (its labels,
//! annotations and spec) and controlled by the pod (`controller: true, blockOwnerDeletion: true`), so the
//! garbage collector deletes it after the pod.
//!
//! An existing claim of that name is used as it is when the pod controls it; one that belongs to someone
//! else is left alone: the pod gets a `FailedBinding` warning (as kube) and the scheduler keeps it pending.
//! A claim deleted while its pod still exists is made again. Claims go through the REST create path, so
//! admission (the default StorageClass, the `pvc-protection` finalizer, quota) applies as to any claim.
//! A failed sync is retried with a back-off (1 s doubling to 256 s).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::events::{self, EventType, ObjectRef};
use super::owners::{Key, Stored, key_of, str_at};
use super::queue::Queue;
use super::reflector::{Change, Reflector};
use crate::handlers::Api;
use crate::resources::pod::ephemeral;
use crate::resources::{Kind, by_kind};
use crate::store::Store;

/// The event source kube's controller records with.
const COMPONENT: &str = "ephemeral_volume";
const MANAGER: &str = "kube-controller-manager";
/// kube's `events.FailedBinding`.
const FAILED_BINDING: &str = "FailedBinding";

/// What one ephemeral volume of a pod needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The claim does not exist: create this one.
    Create(Value),
    /// A claim of that name exists but is not the pod's: (volume name, kube's error).
    NotOwned(String, String),
}

/// The claim kube's controller makes for the ephemeral volume `volume` of `pod` from `template`.
pub fn new_claim(pod: &Value, volume: &str, template: &Value) -> Value {
    let mut meta = json!({
        "name": ephemeral::claim_name(str_at(pod, "/metadata/name"), volume),
        "namespace": str_at(pod, "/metadata/namespace"),
        "ownerReferences": [{
            "apiVersion": "v1",
            "kind": "Pod",
            "name": str_at(pod, "/metadata/name"),
            "uid": str_at(pod, "/metadata/uid"),
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    for field in ["labels", "annotations"] {
        if let Some(map) = template
            .pointer(&format!("/metadata/{field}"))
            .filter(|m| m.as_object().is_some_and(|m| !m.is_empty()))
        {
            meta[field] = map.clone();
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// kube's `syncHandler` without IO: what each ephemeral volume of `pod` needs, given the claims of its
/// namespace (`claim` looks one up by name). Nothing for a pod being deleted. As kube, volumes are
/// handled in order and the first one that cannot be served ends the sync.
pub fn plan<'a>(pod: &Value, claim: impl Fn(&str) -> Option<&'a Value>) -> Vec<Step> {
    let mut steps = Vec::new();
    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return steps;
    }
    let Some(spec) = pod.get("spec") else {
        return steps;
    };
    let pod_name = str_at(pod, "/metadata/name");
    for (_, volume, template) in ephemeral::volumes(spec) {
        // Validation refuses an ephemeral volume without a template; a stored one is skipped.
        let Some(template) = template else { continue };
        let name = ephemeral::claim_name(pod_name, volume);
        match claim(&name) {
            None => steps.push(Step::Create(new_claim(pod, volume, template))),
            Some(existing) if ephemeral::claim_is_for_pod(pod, existing) => {}
            Some(_) => {
                let ns = str_at(pod, "/metadata/namespace");
                let message = ephemeral::not_owner_message(ns, &name, pod_name);
                steps.push(Step::NotOwned(volume.to_string(), message));
                break;
            }
        }
    }
    steps
}

/// Whether the pod spec has any ephemeral volume.
fn has_ephemeral(pod: &Value) -> bool {
    pod.get("spec")
        .is_some_and(|s| ephemeral::volumes(s).next().is_some())
}

struct Controller {
    api: Api,
    /// Pods with ephemeral volumes.
    pods: BTreeMap<Key, Stored>,
    claims: BTreeMap<Key, Stored>,
    /// Pods to sync, and the retries of failed syncs.
    queue: Queue<Key>,
    /// Pod uid → the warnings already recorded about it (kube's recorder folds repeats into a count).
    warned: HashMap<String, HashSet<String>>,
    /// Whether pods and claims have had their first listing.
    listed: [bool; 2],
}

impl Controller {
    fn pod_change(&mut self, change: Change) {
        let prefix = super::PODS_PREFIX;
        match change {
            Change::Reset(items) => {
                self.pods = items
                    .iter()
                    .filter_map(|kv| Some((key_of(prefix, kv)?, Stored::parse(kv)?)))
                    .filter(|(_, p)| has_ephemeral(&p.value))
                    .collect();
                self.queue.mark_all(self.pods.keys().cloned());
                let uids: HashSet<&str> = self.pods.values().map(Stored::uid).collect();
                self.warned.retain(|uid, _| uids.contains(uid.as_str()));
                self.listed[0] = true;
            }
            Change::Put(kv) => {
                let (Some(key), Some(pod)) = (key_of(prefix, &kv), Stored::parse(&kv)) else {
                    return;
                };
                if !has_ephemeral(&pod.value) {
                    return;
                }
                // The spec is immutable: only a new pod (or a new one of the same name) needs work.
                let known = self.pods.get(&key).is_some_and(|p| p.uid() == pod.uid());
                if !known {
                    self.queue.mark(key.clone());
                }
                self.pods.insert(key, pod);
            }
            Change::Delete(kv) => {
                if let Some(old) = key_of(prefix, &kv).and_then(|k| self.pods.remove(&k)) {
                    self.warned.remove(old.uid());
                }
            }
        }
    }

    fn claim_change(&mut self, change: Change) {
        let prefix = by_kind(Kind::PersistentVolumeClaim).prefix(None);
        match change {
            Change::Reset(items) => {
                self.claims = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.queue.mark_all(self.pods.keys().cloned());
                self.listed[1] = true;
            }
            Change::Put(kv) => {
                if let (Some(key), Some(claim)) = (key_of(&prefix, &kv), Stored::parse(&kv)) {
                    self.claims.insert(key, claim);
                }
            }
            Change::Delete(kv) => {
                let Some((ns, name)) = key_of(&prefix, &kv) else {
                    return;
                };
                self.claims.remove(&(ns.clone(), name.clone()));
                // A pod still using it as an ephemeral volume gets it again (kube's `onPVCDelete`).
                let users: Vec<Key> = self
                    .pods
                    .range((ns.clone(), String::new())..)
                    .take_while(|((pod_ns, _), _)| *pod_ns == ns)
                    .filter(|(_, pod)| {
                        let pod_name = pod.name();
                        pod.value.get("spec").is_some_and(|s| {
                            ephemeral::volumes(s)
                                .any(|(_, v, _)| ephemeral::claim_name(pod_name, v) == name)
                        })
                    })
                    .map(|(key, _)| key.clone())
                    .collect();
                self.queue.mark_all(users);
            }
        }
    }

    /// Sync one pod; on failure retry it after the back-off.
    async fn sync(&mut self, key: Key) {
        let Some(pod) = self.pods.get(&key).cloned() else {
            self.queue.succeeded(&key);
            return;
        };
        let ns = key.0.clone();
        let steps = plan(&pod.value, |name| {
            self.claims
                .get(&(ns.clone(), name.to_string()))
                .map(|c| c.value.as_ref())
        });
        let mut failure = None;
        for step in steps {
            let (volume, error) = match step {
                Step::Create(claim) => {
                    let volume_name = claim_volume(&pod.value, &claim);
                    match self.create(&ns, claim).await {
                        Ok(()) => continue,
                        Err(e) => (volume_name, e),
                    }
                }
                Step::NotOwned(volume, message) => (volume, message),
            };
            self.warn(&pod.value, &format!("ephemeral volume {volume}: {error}"))
                .await;
            failure = Some(error);
            break;
        }
        match failure {
            None => {
                self.queue.succeeded(&key);
            }
            Some(error) => {
                tracing::debug!(pod = %format!("{}/{}", key.0, key.1), %error,
                    "ephemeral volume sync failed; will retry");
                self.queue.failed(key, jiff::Timestamp::now().as_second());
            }
        }
    }

    /// Create one claim; kube's error text (`create PVC <name>: <error>`) on failure.
    async fn create(&mut self, ns: &str, claim: Value) -> Result<(), String> {
        let name = str_at(&claim, "/metadata/name").to_string();
        let def = by_kind(Kind::PersistentVolumeClaim);
        let opts = super::object::write_opts(MANAGER);
        match self.api.create(def, Some(ns), claim, &[], &opts).await {
            Ok((written, _)) => {
                tracing::debug!(claim = %format!("{ns}/{name}"), "created ephemeral volume claim");
                // Seen at once, before the watch delivers it, so the next round does not create again.
                let revision = str_at(&written, "/metadata/resourceVersion").parse();
                if let Ok(revision) = revision {
                    let stored = Stored {
                        value: Arc::new(written),
                        revision,
                    };
                    self.claims.insert((ns.to_string(), name), stored);
                }
                Ok(())
            }
            Err(e) => Err(format!("create PVC {name}: {}", e.message)),
        }
    }

    /// A `FailedBinding` warning about the pod, once per distinct message.
    async fn warn(&mut self, pod: &Value, message: &str) {
        let uid = str_at(pod, "/metadata/uid").to_string();
        if !self
            .warned
            .entry(uid)
            .or_default()
            .insert(message.to_string())
        {
            return;
        }
        let object = ObjectRef::of("v1", "Pod", pod);
        let store = self.api.store.as_ref();
        events::record_for(
            store,
            COMPONENT,
            &object,
            EventType::Warning,
            FAILED_BINDING,
            message,
        )
        .await;
    }
}

/// The pod volume a planned claim is for (its name is `<pod>-<volume>`).
fn claim_volume(pod: &Value, claim: &Value) -> String {
    let name = str_at(claim, "/metadata/name");
    name.strip_prefix(str_at(pod, "/metadata/name"))
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(name)
        .to_string()
}

/// Run the ephemeral volume controller until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut pods = Reflector::new(store.clone(), super::PODS_PREFIX);
    let mut claims = Reflector::new(
        store.clone(),
        &by_kind(Kind::PersistentVolumeClaim).prefix(None),
    );
    let mut c = Controller {
        api: Api::new(store),
        pods: BTreeMap::new(),
        claims: BTreeMap::new(),
        queue: Queue::new(),
        warned: HashMap::new(),
        listed: [false; 2],
    };
    while !*shutdown.borrow() {
        let wait = c.queue.sleep_for(jiff::Timestamp::now().as_second());
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = pods.next() => c.pod_change(change),
            change = claims.next() => c.claim_change(change),
            _ = tokio::time::sleep(wait) => {}
        }
        // Claims first: a pod is judged by the claims already delivered.
        claims.drain(usize::MAX, |change| c.claim_change(change));
        pods.drain(usize::MAX, |change| c.pod_change(change));
        if c.listed.contains(&false) {
            continue;
        }
        let now = jiff::Timestamp::now().as_second();
        for key in c.queue.take_due_and_dirty(now) {
            if *shutdown.borrow() {
                break;
            }
            c.sync(key).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(deleting: bool) -> Value {
        let mut p = json!({"metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"volumes": [
                {"name": "cache", "emptyDir": {}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {
                    "metadata": {"labels": {"type": "scratch"}, "annotations": {"a": "b"}},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "1Gi"}}}}}},
                {"name": "more", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]}});
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        }
        p
    }

    #[test]
    fn missing_claims_are_made_from_the_template() {
        let steps = plan(&pod(false), |_| None);
        assert_eq!(
            steps,
            vec![
                Step::Create(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "web-scratch", "namespace": "ns",
                        "labels": {"type": "scratch"}, "annotations": {"a": "b"},
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "web",
                            "uid": "u1", "controller": true, "blockOwnerDeletion": true}]},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "1Gi"}}}})),
                Step::Create(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "web-more", "namespace": "ns",
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "web",
                            "uid": "u1", "controller": true, "blockOwnerDeletion": true}]},
                    "spec": {}})),
            ]
        );
        assert_eq!(plan(&pod(true), |_| None), vec![]);
        let create = &steps[0];
        let Step::Create(claim) = create else {
            panic!("{create:?}")
        };
        assert_eq!(claim_volume(&pod(false), claim), "scratch");
    }

    #[test]
    fn owned_claims_are_kept_and_foreign_ones_reported() {
        let owned = new_claim(&pod(false), "scratch", &json!({}));
        let foreign = json!({"metadata": {"name": "web-scratch", "namespace": "ns"}});
        let steps = plan(&pod(false), |name| {
            (name == "web-scratch").then_some(&owned)
        });
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(matches!(&steps[0], Step::Create(c) if str_at(c, "/metadata/name") == "web-more"));
        assert_eq!(
            plan(&pod(false), |_| Some(&foreign)),
            vec![Step::NotOwned(
                "scratch".into(),
                "PVC ns/web-scratch was not created for pod ns/web (pod is not owner)".into()
            )]
        );
    }
}
