//! One sync of one Deployment (kube's `syncDeployment`): claim its ReplicaSets, find or create the new
//! one, roll (RollingUpdate or Recreate) or only scale (paused, scaling events), clean up history, then
//! write the revision annotation and the status when they changed.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::super::events::{self, EventType, ObjectRef};
use super::super::owners::{self, Claim, Selector, Stored, int_at, str_at};
use super::rollout::{self, replicas};
use super::status::{self, PROGRESSING};
use super::template;
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};
use crate::store::Revision;

pub const COMPONENT: &str = "deployment-controller";
const MANAGER: &str = "kube-controller-manager";

/// What a sync wrote (store revisions, for expectations) and when to look again.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rs_write: Option<Revision>,
    pub d_write: Option<Revision>,
    /// UNIX time of the progress deadline.
    pub recheck_at: Option<i64>,
}

/// The pods of the namespace as the Deployment controller needs them.
#[derive(Debug, Default)]
pub struct PodOwners {
    /// Controller uids of pods that are not Succeeded or Failed (being deleted or not).
    pub running: HashSet<String>,
    /// Controller uids of any pod.
    pub any: HashSet<String>,
}

pub struct Sync<'a> {
    pub(super) api: &'a Api,
    pub(super) d: Value,
    pub(super) old_status: Value,
    pub(super) status: Value,
    pub(super) revision: Option<String>,
    pub(super) sets: Vec<Value>,
    pub(super) out: Outcome,
}

impl<'a> Sync<'a> {
    pub fn new(api: &'a Api, d: &Stored) -> Sync<'a> {
        let old_status = d.value.get("status").cloned().unwrap_or(json!({}));
        Sync {
            api,
            d: Value::clone(&d.value),
            status: old_status.clone(),
            old_status,
            revision: None,
            sets: Vec::new(),
            out: Outcome::default(),
        }
    }

    pub(super) async fn event(&self, type_: EventType, reason: &str, message: &str) {
        let object = ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: str_at(&self.d, "/metadata/namespace").into(),
            name: str_at(&self.d, "/metadata/name").into(),
            uid: str_at(&self.d, "/metadata/uid").into(),
            resource_version: str_at(&self.d, "/metadata/resourceVersion").into(),
        };
        let store = self.api.store.as_ref();
        if let Err(err) =
            events::record_about(store, COMPONENT, &object, type_, reason, message).await
        {
            tracing::warn!(deployment = %object.name, error = %err, "failed to record event");
        }
    }

    pub(super) fn ns(&self) -> String {
        str_at(&self.d, "/metadata/namespace").to_string()
    }

    pub(super) async fn update_rs(&mut self, rs: Value) -> ApiResult<Value> {
        let def = by_kind(Kind::ReplicaSet);
        let name = str_at(&rs, "/metadata/name").to_string();
        let opts = super::super::object::write_opts(MANAGER);
        let (written, _, _) = self
            .api
            .update(def, Some(&self.ns()), &name, None, rs, &[], &opts)
            .await?;
        owners::note_write(&mut self.out.rs_write, &written);
        Ok(written)
    }

    /// The whole sync; `pods` only matters for Recreate and history clean-up.
    pub async fn run(mut self, candidates: Vec<Stored>, pods: &PodOwners) -> ApiResult<Outcome> {
        let Some(selector) = Selector::parse(self.d.pointer("/spec/selector")) else {
            tracing::warn!(deployment = %str_at(&self.d, "/metadata/name"), "invalid selector");
            return Ok(self.out);
        };
        let generation = int_at(&self.d, "/metadata/generation").unwrap_or(0);
        if selector.is_empty() {
            if int_at(&self.old_status, "/observedGeneration").unwrap_or(0) < generation {
                self.event(
                    EventType::Warning,
                    "SelectingAll",
                    "This deployment is selecting all pods. A non-empty selector is required.",
                )
                .await;
                self.status["observedGeneration"] = json!(generation);
                self.finish().await?;
            }
            return Ok(self.out);
        }
        self.claim(candidates, &selector).await?;
        if self.deleting() {
            self.find_new(false).await?;
            self.status = self.plain_status();
            self.finish().await?;
            return Ok(self.out);
        }
        self.paused_conditions();
        let paused = self.d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
        if paused || self.scaling_event().await? {
            let new = self.find_new(false).await?;
            self.scale(new).await?;
            if paused {
                self.cleanup(new, pods).await?;
            }
            self.status = self.plain_status();
        } else if rollout::recreate(&self.d) {
            self.recreate(pods).await?;
        } else {
            self.rolling(pods).await?;
        }
        self.finish().await?;
        Ok(self.out)
    }

    fn deleting(&self) -> bool {
        self.d
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
    }

    /// Adopt orphan ReplicaSets the selector picks, release owned ones it no longer picks.
    async fn claim(&mut self, candidates: Vec<Stored>, selector: &Selector) -> ApiResult<()> {
        let uid = str_at(&self.d, "/metadata/uid").to_string();
        let deleting = self.deleting();
        let def = by_kind(Kind::ReplicaSet);
        let ns = self.ns();
        for rs in candidates {
            let adopt = match owners::claim(&uid, deleting, selector, &rs) {
                Claim::Owned => {
                    self.sets.push(Value::clone(&rs.value));
                    continue;
                }
                Claim::Ignore => continue,
                Claim::Adopt => true,
                Claim::Release => false,
            };
            let written =
                owners::rewrite_owner(self.api, def, &ns, rs.name(), &self.d, adopt).await?;
            if let Some(written) = written {
                owners::note_write(&mut self.out.rs_write, &written);
                if adopt {
                    self.sets.push(written);
                }
            }
        }
        self.sets.sort_by(rollout::by_creation);
        Ok(())
    }

    fn paused_conditions(&mut self) {
        if status::deadline(&self.d).is_none() {
            return;
        }
        let reason = status::reason_of(&self.status, PROGRESSING);
        if reason.as_deref() == Some(status::TIMED_OUT) {
            return;
        }
        let paused = self.d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
        let paused_cond = reason.as_deref() == Some(status::PAUSED);
        let cond = if paused && !paused_cond {
            status::new_condition(
                PROGRESSING,
                "Unknown",
                status::PAUSED,
                "Deployment is paused",
            )
        } else if !paused && paused_cond {
            status::new_condition(
                PROGRESSING,
                "Unknown",
                status::RESUMED,
                "Deployment is resumed",
            )
        } else {
            return;
        };
        status::set_condition(&mut self.status, cond);
    }

    pub(super) fn new_index(&self) -> Option<usize> {
        let t = self.d.pointer("/spec/template");
        self.sets
            .iter()
            .position(|rs| template::equal_ignore_hash(rs.pointer("/spec/template"), t))
    }

    pub(super) fn olds(&self, new: Option<usize>) -> Vec<usize> {
        (0..self.sets.len()).filter(|i| Some(*i) != new).collect()
    }

    /// kube's `getNewReplicaSet` (with `getAllReplicaSetsAndSyncRevision`): the index of the new
    /// ReplicaSet, its revision brought up to date; created when `create` and missing.
    pub(super) async fn find_new(&mut self, create: bool) -> ApiResult<Option<usize>> {
        let existing = self.new_index();
        let max_old = self
            .olds(existing)
            .iter()
            .map(|i| template::revision(&self.sets[*i]))
            .max()
            .unwrap_or(0);
        let revision = max_old + 1;
        let has_deadline = status::deadline(&self.d).is_some();
        if let Some(i) = existing {
            let mut rs = self.sets[i].clone();
            let changed = template::set_new_rs_annotations(&self.d, &mut rs, revision, true);
            let min_ready = int_at(&self.d, "/spec/minReadySeconds").unwrap_or(0);
            if changed || int_at(&rs, "/spec/minReadySeconds").unwrap_or(0) != min_ready {
                rs["spec"]["minReadySeconds"] = json!(min_ready);
                self.sets[i] = self.update_rs(rs).await?;
            }
            self.revision = Some(template::revision(&self.sets[i]).to_string());
            if has_deadline && status::condition(&self.status, PROGRESSING).is_none() {
                let msg = format!(
                    "Found new replica set \"{}\"",
                    str_at(&self.sets[i], "/metadata/name")
                );
                let cond = status::new_condition(PROGRESSING, "True", "FoundNewReplicaSet", &msg);
                status::set_condition(&mut self.status, cond);
            }
            return Ok(Some(i));
        }
        if !create {
            return Ok(None);
        }
        let collisions = int_at(&self.status, "/collisionCount");
        let template_value = self
            .d
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_default();
        let hash = template::pod_template_hash(&template_value, collisions);
        let mut rs = template::new_replica_set(&self.d, &hash, 0, revision);
        let all: Vec<&Value> = self.sets.iter().chain([&rs]).collect();
        let size = rollout::new_rs_replicas(&self.d, &all, 0);
        rs["spec"]["replicas"] = json!(size);
        let name = str_at(&rs, "/metadata/name").to_string();
        let def = by_kind(Kind::ReplicaSet);
        let opts = super::super::object::write_opts(MANAGER);
        let created = match self.api.create(def, Some(&self.ns()), rs, &[], &opts).await {
            Ok((created, _)) => {
                owners::note_write(&mut self.out.rs_write, &created);
                Some(created)
            }
            Err(e) if e.code == 409 => None,
            Err(e) => {
                if has_deadline {
                    let msg = format!("Failed to create new replica set \"{name}\": {}", e.message);
                    let cond =
                        status::new_condition(PROGRESSING, "False", "ReplicaSetCreateError", &msg);
                    status::set_condition(&mut self.status, cond);
                    self.finish().await?;
                }
                return Err(e);
            }
        };
        let created = match created {
            Some(created) => created,
            None => {
                // Ours with this template (a watch behind): use it. Anyone else's: a hash collision.
                let found = self.api.get(def, Some(&self.ns()), &name).await?;
                let ours = owners::controller_ref(&found).and_then(|r| r.get("uid"))
                    == self.d.pointer("/metadata/uid");
                if !ours
                    || !template::equal_ignore_hash(
                        found.pointer("/spec/template"),
                        self.d.pointer("/spec/template"),
                    )
                {
                    self.status["collisionCount"] = json!(collisions.unwrap_or(0) + 1);
                    self.finish().await?;
                    return Err(ApiError::conflict(
                        "apps",
                        "replicasets",
                        &name,
                        "hash collision; trying again with a new collisionCount",
                    ));
                }
                self.sets.push(found);
                self.sets.sort_by(rollout::by_creation);
                let i = self.new_index();
                self.revision = i.map(|i| template::revision(&self.sets[i]).to_string());
                return Ok(i);
            }
        };
        if size > 0 {
            self.event(
                EventType::Normal,
                "ScalingReplicaSet",
                &format!("Scaled up replica set {name} from 0 to {size}"),
            )
            .await;
        }
        self.revision = Some(revision.to_string());
        if has_deadline {
            let msg = format!("Created new replica set \"{name}\"");
            let cond = status::new_condition(PROGRESSING, "True", "NewReplicaSetCreated", &msg);
            status::set_condition(&mut self.status, cond);
        }
        self.sets.push(created);
        self.sets.sort_by(rollout::by_creation);
        Ok(self.new_index())
    }

    /// Set the size (and the replica annotations) of ReplicaSet `i`; whether the size changed.
    pub(super) async fn scale_rs(&mut self, i: usize, size: i64) -> ApiResult<bool> {
        let want = replicas(&self.d);
        let max = want + rollout::max_surge(&self.d);
        let mut rs = self.sets[i].clone();
        let from = replicas(&rs);
        let annotated = template::set_replicas_annotations(&mut rs, want, max);
        if from == size && !annotated {
            return Ok(false);
        }
        rs["spec"]["replicas"] = json!(size);
        self.sets[i] = self.update_rs(rs).await?;
        if from != size {
            let (verb, name) = (
                if from < size { "up" } else { "down" },
                str_at(&self.sets[i], "/metadata/name").to_string(),
            );
            self.event(
                EventType::Normal,
                "ScalingReplicaSet",
                &format!("Scaled {verb} replica set {name} from {from} to {size}"),
            )
            .await;
        }
        Ok(from != size)
    }

    /// kube's `scaleReplicaSetAndRecordEvent`: nothing when the size is right already.
    pub(super) async fn scale_to(&mut self, i: usize, size: i64) -> ApiResult<bool> {
        if replicas(&self.sets[i]) == size {
            return Ok(false);
        }
        self.scale_rs(i, size).await
    }

    fn all(&self) -> Vec<&Value> {
        self.sets.iter().collect()
    }

    /// kube's `calculateStatus` over the current ReplicaSets.
    pub(super) fn plain_status(&self) -> Value {
        let new = self.new_index().map(|i| &self.sets[i]);
        status::calculate(&self.d, &self.status, &self.all(), new)
    }

    /// kube's `syncRolloutStatus` (the write happens in `finish`).
    pub(super) fn rollout_status(&mut self, new: Option<usize>) {
        let mut next = self.plain_status();
        let name = new.map(|i| str_at(&self.sets[i], "/metadata/name").to_string());
        let now = jiff::Timestamp::now().as_second();
        status::rollout(&self.d, &self.old_status, &mut next, name.as_deref(), now);
        self.out.recheck_at = status::deadline_at(&self.d, &next).map(|at| at + 1);
        self.status = next;
    }

    /// Write the revision annotation (the object) and then the status, each only when it changed.
    async fn finish(&mut self) -> ApiResult<()> {
        let def = by_kind(Kind::Deployment);
        let ns = self.ns();
        let name = str_at(&self.d, "/metadata/name").to_string();
        let opts = super::super::object::write_opts(MANAGER);
        let current = str_at(
            &self.d,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        )
        .to_string();
        let revision = self.revision.clone().filter(|r| *r != current);
        if revision.is_none() && self.status == self.old_status {
            return Ok(());
        }
        // One status write carries the revision annotation too, as kube's controller does: through the
        // status path an annotation is no new generation.
        let mut body = self.d.clone();
        if let Some(revision) = revision
            && let Some(meta) = super::super::object::child(&mut body, "metadata")
        {
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if !annotations.is_object() {
                *annotations = json!({});
            }
            annotations[template::REVISION] = json!(revision);
        }
        body["status"] = self.status.clone();
        let (written, _, _) = self
            .api
            .update(def, Some(&ns), &name, Some("status"), body, &[], &opts)
            .await?;
        owners::note_write(&mut self.out.d_write, &written);
        self.old_status = self.status.clone();
        self.d = written;
        Ok(())
    }
}
