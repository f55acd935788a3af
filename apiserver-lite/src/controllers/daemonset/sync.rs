//! One sync of a DaemonSet: claim its pods, plan each node (create, delete, replace failed and
//! succeeded pods), roll out a new template, and write the status.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::super::deployment::template::pod_template_hash;
use super::super::events::EventType;
use super::super::object;
use super::super::owners::{self, Claim, Key, Selector, Stored, int_at, str_at};
use super::super::statefulset::history;
use super::cache::{Cache, backoff_holds, set_timer};
use super::writes::{event, note_write, write_pods, write_status};
use super::{MANAGER, plan, pods};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};
use crate::store::Revision;

/// Sync one DaemonSet; `Some(revision)` of the last pod write it made.
pub(super) async fn sync(api: &Api, cache: &mut Cache, key: &Key) -> ApiResult<Option<Revision>> {
    let Some(ds) = cache.sets.get(key).cloned() else {
        return Ok(None);
    };
    // Its pods cannot be judged reliably while it goes (kube returns without a status update too).
    if ds.deleting() {
        return Ok(None);
    }
    let (ns, _) = key;
    let Some(selector) = Selector::parse(ds.value.pointer("/spec/selector")) else {
        tracing::warn!(daemonset = %format!("{}/{}", key.0, key.1), "invalid selector; not syncing");
        return Ok(None);
    };
    if selector.is_empty() {
        event(
            api,
            &ds.value,
            EventType::Warning,
            "SelectingAll",
            "This daemon set is selecting all pods. A non-empty selector is required.",
        )
        .await;
        return Ok(None);
    }
    let mut last_write: Option<Revision> = None;
    let owned = claim(api, &ds, &selector, cache, &mut last_write).await?;
    let Some(daemon_pod) = pods::daemon_pod(&ds.value) else {
        tracing::warn!(daemonset = %format!("{}/{}", key.0, key.1), "template is not a pod; not syncing");
        return Ok(None);
    };
    let view = history::owned(history::in_namespace(&cache.revisions, ns), &ds.value);
    // A revision equal to the template once both are defaulted keeps its hash (see `equal_revision`).
    let hash = history::equal_revision(&view, &ds.value)
        .and_then(|r| {
            r.value
                .pointer("/metadata/labels")?
                .get(history::HASH_LABEL)?
                .as_str()
        })
        .map(str::to_string)
        .unwrap_or_else(|| {
            pod_template_hash(
                ds.value.pointer("/spec/template").unwrap_or(&Value::Null),
                int_at(&ds.value, "/status/collisionCount"),
            )
        });
    // The history (kube's `constructHistory` and `cleanupHistory`): revisions of pods are live.
    let live: BTreeSet<String> = owned
        .iter()
        .filter_map(|p| p.labels().remove(history::HASH_LABEL))
        .map(|h| format!("{}-{h}", ds.name()))
        .collect();
    let wanted = history::Wanted {
        set: &ds.value,
        name: format!("{}-{hash}", ds.name()),
        hash_label: Some(&hash),
    };
    history::sync(api, &wanted, &view, &live).await?;
    // Daemon pods by node; pods both finished and being deleted are done with.
    let mut node_pods: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    for pod in owned {
        let terminal = matches!(str_at(&pod.value, "/status/phase"), "Succeeded" | "Failed");
        if terminal && pod.deleting() {
            continue;
        }
        if let Some(node) = pods::target_node(&pod.value) {
            node_pods.entry(node).or_default().push(pod);
        }
    }
    let ctx = plan::Ctx {
        ds: &ds.value,
        hash: &hash,
        min_ready: int_at(&ds.value, "/spec/minReadySeconds").unwrap_or(0),
        now: jiff::Timestamp::now().as_second(),
    };
    let eligible: Vec<(String, bool, bool)> = cache
        .nodes
        .iter()
        .map(|(name, entry)| {
            let (run, keep) = pods::should_run(&daemon_pod, &entry.node);
            (name.clone(), run, keep)
        })
        .collect();
    // The manage step.
    let mut create_on: Vec<String> = Vec::new();
    let mut delete: Vec<Stored> = Vec::new();
    let now = Instant::now();
    for (node, run, keep) in &eligible {
        let on_node = node_pods.get(node).map(Vec::as_slice).unwrap_or(&[]);
        let p = plan::node_plan(&ctx, *run, *keep, on_node);
        if p.create {
            create_on.push(node.clone());
        }
        delete.extend(p.delete);
        for pod in p.failed {
            match backoff_holds(
                &mut cache.backoff,
                (ds.uid().to_string(), node.clone()),
                now,
            ) {
                Err(at) => set_timer(cache, key, at),
                Ok(()) => {
                    let msg = format!(
                        "Found failed daemon pod {ns}/{} on node {node}, will try to kill it",
                        pod.name()
                    );
                    event(api, &ds.value, EventType::Warning, "FailedDaemonPod", &msg).await;
                    delete.push(pod);
                }
            }
        }
        for pod in p.succeeded {
            let msg = format!(
                "Found succeeded daemon pod {ns}/{} on node {node}, will try to delete it",
                pod.name()
            );
            event(
                api,
                &ds.value,
                EventType::Normal,
                "SucceededDaemonPod",
                &msg,
            )
            .await;
            delete.push(pod);
        }
    }
    // Unscheduled pods pinned to nodes that no longer exist (bound ones are the pod GC's).
    for (node, on_node) in &node_pods {
        if !cache.nodes.contains_key(node) {
            delete.extend(
                on_node
                    .iter()
                    .filter(|p| str_at(&p.value, "/spec/nodeName").is_empty() && !p.deleting())
                    .cloned(),
            );
        }
    }
    let mut errors: Vec<ApiError> = Vec::new();
    let managed = !create_on.is_empty() || !delete.is_empty();
    write_pods(
        api,
        &ds.value,
        &hash,
        &create_on,
        &delete,
        &mut last_write,
        &mut errors,
    )
    .await;
    // The rolling update, once the manage step has nothing left to do (kube waits for its expectations).
    if !managed && errors.is_empty() {
        let mut update_view: BTreeMap<String, Vec<Stored>> = node_pods.clone();
        let mut desired = 0;
        for (node, run, _) in &eligible {
            if *run {
                desired += 1;
                update_view.entry(node.clone()).or_default();
            }
        }
        let (old, surge) = plan::rolling_update(&ctx, &update_view, desired);
        write_pods(
            api,
            &ds.value,
            &hash,
            &surge,
            &old,
            &mut last_write,
            &mut errors,
        )
        .await;
    }
    // The status, over what this sync saw.
    let counts = plan::counts(
        &ctx,
        eligible
            .iter()
            .map(|(node, run, _)| (*run, node_pods.get(node).map(Vec::as_slice).unwrap_or(&[]))),
    );
    if ctx.min_ready > 0 && counts.ready != counts.available {
        set_timer(
            cache,
            key,
            now + Duration::from_secs(ctx.min_ready.unsigned_abs()),
        );
    }
    write_status(api, &ds.value, &counts).await?;
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(last_write),
    }
}

/// Claim the DaemonSet's pods among its namespace's: adopt selected orphans, release unselected ones.
async fn claim(
    api: &Api,
    ds: &Stored,
    selector: &Selector,
    cache: &Cache,
    last_write: &mut Option<Revision>,
) -> ApiResult<Vec<Stored>> {
    let ns = str_at(&ds.value, "/metadata/namespace").to_string();
    let candidates: Vec<Stored> = cache
        .pods
        .range((ns.clone(), String::new())..)
        .take_while(|((pod_ns, _), _)| *pod_ns == ns)
        .map(|(_, p)| p.clone())
        .collect();
    let pod_def = by_kind(Kind::Pod);
    let opts = object::write_opts(MANAGER);
    let mut owned = Vec::new();
    for pod in candidates {
        let next = match owners::claim(ds.uid(), ds.deleting(), selector, &pod) {
            Claim::Owned => {
                owned.push(pod);
                continue;
            }
            Claim::Ignore => continue,
            Claim::Adopt => owners::with_controller(&pod.value, &ds.value),
            Claim::Release => Some(owners::without_owner(&pod.value, ds.uid())),
        };
        let Some(next) = next else { continue };
        let adopt = owners::controller_ref(&next).is_some();
        match api
            .update(pod_def, Some(&ns), pod.name(), None, next, &[], &opts)
            .await
        {
            Ok((written, _, _)) => {
                note_write(last_write, &written);
                if adopt {
                    owned.push(Stored {
                        value: std::sync::Arc::new(written),
                        revision: pod.revision,
                    });
                }
            }
            // Gone or changed meanwhile: its watch event brings this set back.
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(owned)
}
