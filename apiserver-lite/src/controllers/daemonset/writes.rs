//! What the DaemonSet controller writes through the REST API: events, pod creations (slow start) and
//! deletions, and the status (kube's counters).

use futures::future::join_all;
use serde_json::{Value, json};

use super::super::events::{self, EventType, ObjectRef};
use super::super::object;
use super::super::owners::{Stored, int_at, str_at};
use super::{BURST, COMPONENT, MANAGER, plan, pods};
use crate::handlers::{Api, DeleteOpts};
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};
use crate::store::Revision;

pub(super) async fn event(api: &Api, ds: &Value, type_: EventType, reason: &str, message: &str) {
    let object = ObjectRef::of("apps/v1", "DaemonSet", ds);
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

/// The revision a write produced, folded into `last`.
pub(super) fn note_write(last: &mut Option<Revision>, written: &Value) {
    if let Ok(rev) = str_at(written, "/metadata/resourceVersion").parse::<Revision>() {
        *last = Some(last.map_or(rev, |l| l.max(rev)));
    }
}

/// Create a pod on each of `nodes` (slow-start batches 1, 2, 4, …, stopping at the first batch with an
/// error) and delete `victims` (graceful, guarded by uid); at most [`BURST`] of each.
pub(super) async fn write_pods(
    api: &Api,
    ds: &Value,
    hash: &str,
    nodes: &[String],
    victims: &[Stored],
    last: &mut Option<Revision>,
    errors: &mut Vec<ApiError>,
) {
    let def = by_kind(Kind::Pod);
    let ns = str_at(ds, "/metadata/namespace");
    let opts = object::write_opts(MANAGER);
    let nodes = &nodes[..nodes.len().min(BURST)];
    let mut pos = 0;
    let mut batch = 1usize;
    while pos < nodes.len() {
        let chunk = &nodes[pos..(pos + batch).min(nodes.len())];
        let results = join_all(
            chunk
                .iter()
                .map(|node| api.create(def, Some(ns), pods::new_pod(ds, node, hash), &[], &opts)),
        )
        .await;
        let mut failed = false;
        for result in results {
            match result {
                Ok((pod, _)) => {
                    note_write(last, &pod);
                    let msg = format!("Created pod: {}", str_at(&pod, "/metadata/name"));
                    event(api, ds, EventType::Normal, "SuccessfulCreate", &msg).await;
                }
                Err(e) => {
                    let msg = format!("Error creating: {}", e.message);
                    event(api, ds, EventType::Warning, "FailedCreate", &msg).await;
                    errors.push(e);
                    failed = true;
                }
            }
        }
        if failed {
            break;
        }
        pos += chunk.len();
        batch = batch.saturating_mul(2);
    }
    let victims = &victims[..victims.len().min(BURST)];
    let results = join_all(victims.iter().map(|pod| {
        let opts = DeleteOpts {
            uid: Some(pod.uid().to_string()),
            ..DeleteOpts::default()
        };
        async move {
            (
                pod.name(),
                api.delete(def, Some(ns), pod.name(), &opts, false).await,
            )
        }
    }))
    .await;
    for (name, result) in results {
        match result {
            Ok(gone) => {
                note_write(last, &gone);
                let msg = format!("Deleted pod: {name}");
                event(api, ds, EventType::Normal, "SuccessfulDelete", &msg).await;
            }
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => {
                let msg = format!("Error deleting: {}", e.message);
                event(api, ds, EventType::Warning, "FailedDelete", &msg).await;
                errors.push(e);
            }
        }
    }
}

/// The status kube writes: the four required counters always, the others when not zero (`omitempty`),
/// `observedGeneration`; what else is there (`collisionCount`, `conditions`) stays.
pub(super) fn next_status(ds: &Value, c: &plan::Counts) -> Value {
    let mut status = ds
        .get("status")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (field, n) in [
        ("desiredNumberScheduled", c.desired),
        ("currentNumberScheduled", c.current),
        ("numberMisscheduled", c.misscheduled),
        ("numberReady", c.ready),
    ] {
        status.insert(field.into(), json!(n));
    }
    for (field, n) in [
        ("updatedNumberScheduled", c.updated),
        ("numberAvailable", c.available),
        ("numberUnavailable", c.desired - c.available),
    ] {
        if n != 0 {
            status.insert(field.into(), json!(n));
        } else {
            status.remove(field);
        }
    }
    if let Some(generation) = int_at(ds, "/metadata/generation") {
        status.insert("observedGeneration".into(), json!(generation));
    }
    Value::Object(status)
}

/// Write the status through `daemonsets/status` when it differs from the stored one.
pub(super) async fn write_status(api: &Api, ds: &Value, counts: &plan::Counts) -> ApiResult<()> {
    let status = next_status(ds, counts);
    if ds.get("status") == Some(&status) {
        return Ok(());
    }
    let mut body = ds.clone();
    body["status"] = status;
    let def = by_kind(Kind::DaemonSet);
    let ns = str_at(ds, "/metadata/namespace");
    let name = str_at(ds, "/metadata/name");
    match api
        .update(
            def,
            Some(ns),
            name,
            Some("status"),
            body,
            &[],
            &object::write_opts(MANAGER),
        )
        .await
    {
        // A newer version is on its way through the watch; that sync writes the status then.
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
