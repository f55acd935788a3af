//! The volume binder (kube-controller-manager's PersistentVolume controller), skiff's local-path
//! provisioner (rancher's local-path-provisioner, as k3s ships it) and the `pvc-protection` /
//! `pv-protection` finalizer controllers, in one control loop over one cache.
//!
//! Claims, volumes, StorageClasses, pods and nodes are followed with list-then-watch. A change marks the
//! claims and volumes it may affect dirty; each round syncs the dirty volumes, then the dirty claims:
//! - a claim (`claim`): an unbound one is bound to the best volume (see [`matching::best_match`]), or handed
//!   to its class's provisioner (annotations and `ExternalProvisioning`), or waits for its first consumer
//!   (`WaitForFirstConsumer`); a bound one is kept consistent with its volume, or becomes `Lost`;
//! - a volume (`volume`): `Available` without a claim, `Bound` with one, `Released` when its claim is gone,
//!   then deleted when it is a local-path volume with reclaim policy `Delete`;
//! - the provisioner (`provision`) creates `pvc-<claim uid>` for claims of a `skiff.io/local-path` class
//!   once the scheduler has chosen their node;
//! - protection (`protection`) lets a claim or volume being deleted go once nothing uses it.
//!
//! Every write goes through the REST handlers with the resourceVersion it was based on, so a concurrent
//! change fails with a conflict and the item is synced again from the newer state. A failed sync is
//! retried with a back-off (1 s doubling to 256 s).

mod cache;
mod claim;
mod matching;
mod protection;
mod provision;
mod volume;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::events::{self, EventType, ObjectRef};
use super::owners::{Key, Stored, str_at};
use super::queue::Queue;
use super::reflector::Reflector;
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::ApiResult;
use crate::store::Store;
use cache::Cache;

/// The provisioner name of skiff's local-path volumes.
pub use crate::resources::storage::LOCAL_PATH_PROVISIONER as LOCAL_PATH;
/// Where local-path volumes live on the nodes unless `--local-path-root` says otherwise.
pub const DEFAULT_LOCAL_PATH_ROOT: &str = "/var/lib/skiff/storage";

/// The binder's event source and field manager (kube's).
const COMPONENT: &str = "persistentvolume-controller";
const MANAGER: &str = "kube-controller-manager";

const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
use crate::resources::storage::{
    PV_PROTECTION_FINALIZER as PV_PROTECTION, PVC_PROTECTION_FINALIZER as PVC_PROTECTION,
};

/// At most this many already-delivered changes are folded into one round before syncing.
const BATCH: usize = 512;

/// Settings of the volume controllers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The directory local-path volumes are made under on every node (`--local-path-root`).
    pub local_path_root: PathBuf,
}

/// What a round syncs; volumes sort before claims, so a claim sees its volume's fresh phase.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Item {
    Volume(String),
    Claim(Key),
}

/// The events already recorded about one claim in its current state (see [`Controller::claim_event`]).
struct Recorded {
    state: u64,
    seen: HashSet<(String, String)>,
}

struct Controller {
    api: Api,
    settings: Settings,
    /// The provisioner's event source: `skiff.io/local-path_<this server>`, in the shape of kube's
    /// external provisioners' `<provisioner>_<host>_<id>`.
    provisioner_component: String,
    cache: Cache,
    /// Items to sync, consecutive failed syncs and the UNIX time of the next retry.
    queue: Queue<Item>,
    /// Claim uid → events recorded in its current state.
    recorded: HashMap<String, Recorded>,
}

/// Put `new` in `map` unless the map already holds a newer revision of it (one this controller wrote
/// itself and put in at once, before the watch delivered it).
fn put_newer<K: Ord>(map: &mut BTreeMap<K, Stored>, key: K, new: Stored) {
    match map.get(&key) {
        Some(old) if old.revision > new.revision => {}
        _ => {
            map.insert(key, new);
        }
    }
}

/// The claims a pod's volumes name: `persistentVolumeClaim.claimName`, and `<pod>-<volume>` for generic
/// ephemeral volumes.
fn claims_of_pod(pod: &Value) -> Vec<String> {
    let pod_name = str_at(pod, "/metadata/name");
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            if let Some(name) = v
                .pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
            {
                Some(name.to_string())
            } else if v.get("ephemeral").is_some_and(Value::is_object) {
                Some(format!("{pod_name}-{}", str_at(v, "/name")))
            } else {
                None
            }
        })
        .collect()
}

/// Whether `object` has a `deletionTimestamp` (finalizers hold it).
fn being_deleted(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// Whether the claim has been bound before (kube tells bound claims apart by this annotation, not by
/// `spec.volumeName`, which a user may set to ask for a volume).
fn bind_completed(claim: &Value) -> bool {
    claim
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANN_BIND_COMPLETED))
        .is_some()
}

impl Controller {
    /// Sync one item; on failure retry it after the back-off.
    async fn sync(&mut self, item: Item) {
        let result = match &item {
            Item::Volume(name) => self.sync_volume(name).await,
            Item::Claim(key) => self.sync_claim(key).await,
        };
        match result {
            Ok(()) => {
                self.queue.succeeded(&item);
            }
            Err(err) => {
                let what = match &item {
                    Item::Volume(name) => format!("persistentvolume {name}"),
                    Item::Claim((ns, name)) => format!("persistentvolumeclaim {ns}/{name}"),
                };
                if err.code == 409 {
                    tracing::debug!(object = %what, "conflict; syncing again");
                } else {
                    tracing::warn!(object = %what, error = %err.message, "sync failed; will retry");
                }
                self.queue.failed(item, jiff::Timestamp::now().as_second());
            }
        }
    }

    /// Keep a claim's new state (as a write returned it) in the cache at once.
    fn keep_claim(&mut self, claim: &Value) {
        let key = (
            str_at(claim, "/metadata/namespace").to_string(),
            str_at(claim, "/metadata/name").to_string(),
        );
        if let Some(stored) = written(claim) {
            put_newer(&mut self.cache.claims, key, stored);
        }
    }

    /// Keep a volume's new state (as a write returned it) in the cache at once.
    fn keep_volume(&mut self, volume: &Value) {
        let name = str_at(volume, "/metadata/name").to_string();
        if let Some(stored) = written(volume) {
            put_newer(&mut self.cache.volumes, name, stored);
        }
    }

    /// Record an event about a claim once per claim state: kube's controllers report on every sync and
    /// let the event recorder fold repeats into a count; here a repeat of the same reason and message
    /// in the same state (the claim's spec, its selected node and its class's revision) is dropped.
    /// (Not the phase: a first sync reports, then sets `Pending`, and need not report again.)
    async fn claim_event(
        &mut self,
        component: &str,
        claim: &Value,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        let state = self.claim_state(claim);
        let uid = str_at(claim, "/metadata/uid").to_string();
        let recorded = self.recorded.entry(uid).or_insert_with(|| Recorded {
            state,
            seen: HashSet::new(),
        });
        if recorded.state != state {
            recorded.state = state;
            recorded.seen.clear();
        }
        if !recorded
            .seen
            .insert((reason.to_string(), message.to_string()))
        {
            return;
        }
        let object = ObjectRef {
            api_version: "v1".into(),
            kind: "PersistentVolumeClaim".into(),
            namespace: str_at(claim, "/metadata/namespace").into(),
            name: str_at(claim, "/metadata/name").into(),
            uid: str_at(claim, "/metadata/uid").into(),
            resource_version: str_at(claim, "/metadata/resourceVersion").into(),
        };
        let store = self.api.store.as_ref();
        if let Err(err) =
            events::record_about(store, component, &object, type_, reason, message).await
        {
            tracing::warn!(claim = %object.name, error = %err, "failed to record event");
        }
    }

    fn claim_state(&self, claim: &Value) -> u64 {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        claim.get("spec").map(Value::to_string).hash(&mut h);
        claim
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ANN_SELECTED_NODE))
            .map(Value::to_string)
            .hash(&mut h);
        self.cache
            .classes
            .get(matching::claim_class(claim))
            .map(|c| c.revision)
            .hash(&mut h);
        h.finish()
    }
}

/// A written object as the cache holds it (its revision is its resourceVersion).
fn written(object: &Value) -> Option<Stored> {
    let revision = str_at(object, "/metadata/resourceVersion").parse().ok()?;
    Some(Stored {
        value: Arc::new(object.clone()),
        revision,
    })
}

/// An annotation of `object`.
fn annotation<'a>(object: &'a Value, name: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
}

/// Set an annotation on `object` (creating the map). Stored objects always have object metadata; on
/// anything else this does nothing, and the write that follows is refused by validation.
fn set_annotation(object: &mut Value, name: &str, value: &str) {
    if let Some(annotations) = super::object::child(object, "metadata")
        .map(|meta| {
            meta.entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()))
        })
        .and_then(|a| {
            if !a.is_object() {
                *a = Value::Object(Default::default());
            }
            a.as_object_mut()
        })
    {
        annotations.insert(name.into(), value.into());
    }
}

/// PUT of the object (`sub` None) or its status through the REST handlers, as `manager`, based on the
/// resourceVersion `body` carries.
async fn put(
    api: &Api,
    kind: Kind,
    body: Value,
    sub: Option<&str>,
    manager: &str,
) -> ApiResult<Value> {
    let def = by_kind(kind);
    let ns = def
        .namespaced
        .then(|| str_at(&body, "/metadata/namespace").to_string());
    let name = str_at(&body, "/metadata/name").to_string();
    let opts = super::object::write_opts(manager);
    let (written, _, _) = api
        .update(def, ns.as_deref(), &name, sub, body, &[], &opts)
        .await?;
    Ok(written)
}

/// Run the volume controllers until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    settings: Settings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if !settings.local_path_root.is_absolute() {
        anyhow::bail!(
            "--local-path-root {}: must be an absolute path",
            settings.local_path_root.display()
        );
    }
    let mut claims = Reflector::new(store.clone(), &Controller::claims_prefix());
    let mut volumes = Reflector::new(store.clone(), &by_kind(Kind::PersistentVolume).prefix(None));
    let mut classes = Reflector::new(store.clone(), &by_kind(Kind::StorageClass).prefix(None));
    let mut pods = Reflector::new(store.clone(), super::PODS_PREFIX);
    let mut nodes = Reflector::new(store.clone(), super::NODES_PREFIX);
    let mut c = Controller {
        api: Api::new(store),
        settings,
        provisioner_component: format!("{LOCAL_PATH}_{}", super::host_identity()),
        cache: Cache::new(),
        queue: Queue::new(),
        recorded: HashMap::new(),
    };
    while !*shutdown.borrow() {
        let wait = if c.queue.has_dirty() && !c.cache.listed.contains(&false) {
            // Items a sync marked for another round (a claim whose volume was just provisioned).
            Duration::ZERO
        } else {
            c.queue.sleep_for(jiff::Timestamp::now().as_second())
        };
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = claims.next() => c.claim_change(change),
            change = volumes.next() => c.volume_change(change),
            change = classes.next() => c.class_change(change),
            change = pods.next() => c.pod_change(change),
            change = nodes.next() => c.node_change(change),
            _ = tokio::time::sleep(wait) => {}
        }
        // Bring every view up to what is already delivered, so a claim is not judged by a stale volume.
        for _ in 0..BATCH {
            let mut any = false;
            if let Some(change) = volumes.try_next() {
                c.volume_change(change);
                any = true;
            }
            if let Some(change) = claims.try_next() {
                c.claim_change(change);
                any = true;
            }
            if let Some(change) = classes.try_next() {
                c.class_change(change);
                any = true;
            }
            if let Some(change) = pods.try_next() {
                c.pod_change(change);
                any = true;
            }
            if let Some(change) = nodes.try_next() {
                c.node_change(change);
                any = true;
            }
            if !any {
                break;
            }
        }
        if c.cache.listed.contains(&false) {
            continue;
        }
        let now = jiff::Timestamp::now().as_second();
        // What these syncs mark dirty waits for the next round, after the views have caught up.
        for item in c.queue.take_due_and_dirty(now) {
            if *shutdown.borrow() {
                break;
            }
            c.sync(item).await;
        }
    }
    Ok(())
}
