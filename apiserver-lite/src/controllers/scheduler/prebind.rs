//! VolumeBinding's PreBind write: put the chosen node on the pod's `WaitForFirstConsumer` claims
//! (`volume.kubernetes.io/selected-node`), which tells the provisioner where to create their volumes.
//! Runs as its own task, like the pod binding; the scheduler then waits for the claims to be bound.

use std::sync::Arc;

use serde_json::{Value, json};

use super::binding::Outcome;
use super::volumes::SELECTED_NODE;
use crate::controllers::object;
use crate::handlers::Api;
use crate::patch::PatchType;
use crate::resources::{Kind, by_kind};
use crate::store::Revision;

/// kube-scheduler's field manager.
const MANAGER: &str = "kube-scheduler";
const ATTEMPTS: usize = 5;

/// Write `node` as the selected node of every claim in `claims` (`namespace/name`) that has none yet.
pub async fn select_node(api: Arc<Api>, key: String, node: String, claims: Vec<String>) -> Outcome {
    let mut written = Vec::with_capacity(claims.len());
    for claim in claims {
        match select_on_claim(&api, &claim, &node).await {
            Ok(revision) => written.push((claim, revision)),
            Err(error) => return Outcome::VolumesFailed { key, error },
        }
    }
    Outcome::VolumesRequested {
        key,
        claims: written,
    }
}

/// Set the annotation on one claim (compare-and-swap on its resourceVersion); the revision that carries it.
async fn select_on_claim(api: &Api, claim: &str, node: &str) -> Result<Revision, String> {
    let def = by_kind(Kind::PersistentVolumeClaim);
    let (ns, name) = claim
        .split_once('/')
        .ok_or_else(|| format!("bad claim key {claim:?}"))?;
    let revision_of = |value: &Value| {
        object::meta_str(value, "resourceVersion")
            .and_then(|rv| rv.parse::<Revision>().ok())
            .ok_or_else(|| format!("claim {claim} has no resourceVersion"))
    };
    for _ in 0..ATTEMPTS {
        let current = api
            .get(def, Some(ns), name)
            .await
            .map_err(|e| format!("getting claim {claim}: {e}"))?;
        let selected = current
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(SELECTED_NODE))
            .and_then(Value::as_str);
        match selected {
            Some(n) if n == node => return revision_of(&current),
            Some(other) => {
                return Err(format!(
                    "claim {claim} was meanwhile given to node {other:?}"
                ));
            }
            None => {}
        }
        let rv = object::meta_str(&current, "resourceVersion").unwrap_or_default();
        let patch =
            json!({"metadata": {"resourceVersion": rv, "annotations": {SELECTED_NODE: node}}});
        match api
            .patch(
                def,
                Some(ns),
                name,
                None,
                PatchType::Merge,
                patch,
                &[],
                &object::write_opts(MANAGER),
                false,
            )
            .await
        {
            Ok((updated, _, _)) => {
                tracing::info!(claim = %claim, node = %node, "selected node for claim");
                return revision_of(&updated);
            }
            Err(e) if e.code == 409 => continue,
            Err(e) => return Err(format!("updating claim {claim}: {e}")),
        }
    }
    Err(format!("too many conflicting updates of claim {claim}"))
}
