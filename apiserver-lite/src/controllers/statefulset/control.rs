//! The StatefulSet controller's writes (kube's `StatefulPodControl`): pods made after their claims,
//! pods deleted, claims' owner references kept to the retention policy, and the events kube records
//! for each (`SuccessfulCreate` / `FailedCreate` of pods and claims, `SuccessfulDelete` / `FailedDelete`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::claims::{self, PodRef};
use super::{COMPONENT, MANAGER};
use crate::controllers::events::{self, EventType, ObjectRef};
use crate::controllers::object::write_opts;
use crate::controllers::owners::{Key, Stored, str_at};
use crate::handlers::{Api, DeleteOpts};
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};

/// An event about the set.
pub async fn event(api: &Api, set: &Value, type_: EventType, reason: &str, message: &str) {
    let object = ObjectRef::of("apps/v1", "StatefulSet", set);
    events::record_for(
        api.store.as_ref(),
        COMPONENT,
        &object,
        type_,
        reason,
        message,
    )
    .await;
}

/// Several errors as one, the way Go's `errors.NewAggregate` prints them.
fn aggregate(errs: &[String]) -> String {
    match errs {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// kube's `createPersistentVolumeClaims` for the pod `pod` of `ordinal`: each missing claim is made
/// from its template (event `SuccessfulCreate` "create Claim …", or `FailedCreate`), an existing one
/// is reused as it is; one being deleted is an error ("pvc … is being deleted"). `claims` is the
/// controller's view, which may lag behind its own creations: a claim that turns out to exist is
/// looked up instead. The error is every failure, joined.
pub async fn ensure_claims(
    api: &Api,
    claims: &BTreeMap<Key, Stored>,
    set: &Value,
    pod: &str,
    ordinal: i64,
) -> Result<(), String> {
    let ns = str_at(set, "/metadata/namespace");
    let set_name = str_at(set, "/metadata/name");
    let def = by_kind(Kind::PersistentVolumeClaim);
    let mut errs = Vec::new();
    for template in claims::templates(set) {
        let claim = claims::new_claim(set, template, ordinal);
        let name = str_at(&claim, "/metadata/name").to_string();
        let existing = match claims.get(&(ns.to_string(), name.clone())) {
            Some(stored) => Some(stored.deleting()),
            None => {
                let opts = write_opts(MANAGER);
                match api.create(def, Some(ns), claim, &[], &opts).await {
                    Ok(_) => {
                        let message = format!(
                            "create Claim {name} Pod {pod} in StatefulSet {set_name} success"
                        );
                        event(api, set, EventType::Normal, "SuccessfulCreate", &message).await;
                        None
                    }
                    Err(e) if e.code == 409 => match api.get(def, Some(ns), &name).await {
                        Ok(found) => Some(
                            found
                                .pointer("/metadata/deletionTimestamp")
                                .is_some_and(|t| !t.is_null()),
                        ),
                        Err(e) => {
                            errs.push(format!("failed to retrieve PVC {name}: {}", e.message));
                            None
                        }
                    },
                    Err(e) => {
                        let message = format!(
                            "create Claim {name} for Pod {pod} in StatefulSet {set_name} failed error: {}",
                            e.message
                        );
                        event(api, set, EventType::Warning, "FailedCreate", &message).await;
                        errs.push(format!("failed to create PVC {name}: {}", e.message));
                        None
                    }
                }
            }
        };
        if existing == Some(true) {
            errs.push(format!("pvc {name} is being deleted"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(aggregate(&errs))
    }
}

/// kube's `CreateStatefulPod`: the pod's claims first, then the pod. An existing pod of that name (the
/// old one still going away) is no error.
pub async fn create_pod(
    api: &Api,
    claims: &BTreeMap<Key, Stored>,
    set: &Value,
    pod: Value,
    ordinal: i64,
) -> ApiResult<Option<Value>> {
    let ns = str_at(set, "/metadata/namespace");
    let set_name = str_at(set, "/metadata/name");
    let name = str_at(&pod, "/metadata/name").to_string();
    let failed = async |message: &str| {
        let message =
            format!("create Pod {name} in StatefulSet {set_name} failed error: {message}");
        event(api, set, EventType::Warning, "FailedCreate", &message).await;
    };
    if let Err(message) = ensure_claims(api, claims, set, &name, ordinal).await {
        failed(&message).await;
        return Err(ApiError::new(500, "InternalError", message));
    }
    let opts = write_opts(MANAGER);
    match api
        .create(by_kind(Kind::Pod), Some(ns), pod, &[], &opts)
        .await
    {
        Ok((written, _)) => {
            let message = format!("create Pod {name} in StatefulSet {set_name} successful");
            event(api, set, EventType::Normal, "SuccessfulCreate", &message).await;
            Ok(Some(written))
        }
        Err(e) if e.code == 409 => Ok(None),
        Err(e) => {
            failed(&e.message).await;
            Err(e)
        }
    }
}

/// Delete one pod through the REST delete (graceful), guarded by its uid.
pub async fn delete_pod(api: &Api, set: &Value, pod: &Stored) -> ApiResult<Option<Value>> {
    let ns = str_at(set, "/metadata/namespace");
    let set_name = str_at(set, "/metadata/name");
    let opts = DeleteOpts {
        uid: Some(pod.uid().to_string()),
        ..DeleteOpts::default()
    };
    match api
        .delete(by_kind(Kind::Pod), Some(ns), pod.name(), &opts, false)
        .await
    {
        Ok(gone) => {
            let message = format!(
                "delete Pod {} in StatefulSet {set_name} successful",
                pod.name()
            );
            event(api, set, EventType::Normal, "SuccessfulDelete", &message).await;
            Ok(Some(gone))
        }
        Err(e) if e.code == 404 || e.code == 409 => Ok(None),
        Err(e) => {
            let message = format!(
                "delete Pod {} in StatefulSet {set_name} failed error: {}",
                pod.name(),
                e.message
            );
            event(api, set, EventType::Warning, "FailedDelete", &message).await;
            Err(e)
        }
    }
}

/// kube's `UpdatePodClaimForRetentionPolicy`: the owner references of the claims of `pod` (of
/// `ordinal`; `scaled_down` when out of the set's range) follow the retention policy. Only claims the
/// controller's view shows out of line are read again and written; missing ones are left for later.
pub async fn fix_claim_owners(
    api: &Api,
    claims: &BTreeMap<Key, Stored>,
    set: &Value,
    pod: &PodRef<'_>,
    ordinal: i64,
    scaled_down: bool,
) -> ApiResult<()> {
    let ns = str_at(set, "/metadata/namespace");
    for name in claims::claim_names(set, ordinal) {
        let Some(seen) = claims.get(&(ns.to_string(), name.clone())) else {
            continue;
        };
        if claims::owner_up_to_date(&seen.value, set, pod, scaled_down) {
            continue;
        }
        rewrite_claim_owners(api, set, pod, &name, scaled_down).await?;
    }
    Ok(())
}

/// One claim's owner references rewritten on a fresh read, again after a conflict; a claim that is gone
/// needs nothing.
async fn rewrite_claim_owners(
    api: &Api,
    set: &Value,
    pod: &PodRef<'_>,
    name: &str,
    scaled_down: bool,
) -> ApiResult<()> {
    let ns = str_at(set, "/metadata/namespace");
    let def = by_kind(Kind::PersistentVolumeClaim);
    let opts = write_opts(MANAGER);
    for _ in 0..5 {
        let mut current = match api.get(def, Some(ns), name).await {
            Ok(v) => v,
            Err(e) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        };
        if claims::owner_up_to_date(&current, set, pod, scaled_down) {
            return Ok(());
        }
        let refs = claims::owner_refs(&current, set, pod, scaled_down);
        if let Some(meta) = current.get_mut("metadata").and_then(Value::as_object_mut) {
            if refs.is_empty() {
                meta.remove("ownerReferences");
            } else {
                meta.insert("ownerReferences".into(), Value::Array(refs));
            }
        }
        match api
            .update(def, Some(ns), name, None, current, &[], &opts)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 => continue,
            Err(e) if e.code == 404 => return Ok(()),
            Err(e) => {
                return Err(ApiError::new(
                    e.code,
                    e.reason,
                    format!(
                        "Could not update claim {name} for delete policy ownerRefs: {}",
                        e.message
                    ),
                ));
            }
        }
    }
    Err(ApiError::modified(def.group, def.plural, name))
}
