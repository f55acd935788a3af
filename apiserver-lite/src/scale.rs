//! The `scale` subresource of apps/v1 Deployments, ReplicaSets and StatefulSets and of core/v1
//! ReplicationControllers: an `autoscaling/v1 Scale` view of the
//! parent (name, namespace, uid, resourceVersion and creationTimestamp of the parent; `spec.replicas`;
//! `status.replicas` and the selector string) that reads and writes the parent's `spec.replicas`, as
//! kube-apiserver's `ScaleREST` does.
//!
//! A write goes through the parent's ordinary update (defaults, validation, `metadata.generation`,
//! managedFields), with the Scale's `metadata.resourceVersion` as the parent's: a stale one is a 409
//! Conflict, an empty one an unconditional write. `kubectl scale` PATCHes (merge patch) this subresource.

use serde_json::{Value, json};

use crate::handlers::{Api, Query, Repr, WriteOpts, parse_body};
use crate::patch::PatchType;
use crate::resources::ResourceDef;
use crate::resources::workloads::selector_string;
use crate::status::{ApiError, ApiResult, FieldError};
use crate::strict::FieldValidation;

const API_VERSION: &str = "autoscaling/v1";

fn meta_str<'a>(v: &'a Value, k: &str) -> &'a str {
    v.pointer(&format!("/metadata/{k}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The Scale of a Deployment, ReplicaSet or StatefulSet (kube's `scaleFromDeployment`,
/// `scaleFromReplicaSet`, `scaleFromStatefulSet`).
pub fn scale_of(parent: &Value) -> Value {
    let mut meta = serde_json::Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = parent
            .pointer(&format!("/metadata/{k}"))
            .filter(|v| !v.is_null())
        {
            meta.insert(k.into(), v.clone());
        }
    }
    let mut spec = json!({});
    // `ScaleSpec.replicas` is omitted when zero; `ScaleStatus.replicas` never is.
    match parent.pointer("/spec/replicas").and_then(Value::as_i64) {
        Some(n) if n != 0 => spec["replicas"] = json!(n),
        _ => {}
    }
    let mut status = json!({
        "replicas": parent.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
    });
    // A ReplicationController's selector is a plain label map (kube's `scaleFromRC`).
    let selector = if parent.get("kind").and_then(Value::as_str) == Some("ReplicationController") {
        crate::resources::replicationcontroller::selector_string(parent)
    } else {
        selector_string(parent.pointer("/spec/selector"))
    };
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({"kind": "Scale", "apiVersion": API_VERSION, "metadata": meta, "spec": spec, "status": status})
}

/// kubectl's table of a Scale (`kubectl get --subresource=scale`): NAME DESIRED AVAILABLE AGE.
pub fn table(scale: &Value, include_object: &str) -> Value {
    let col = |name: &str, ty: &str, desc: &str| json!({"name": name, "type": ty, "format": "", "description": desc, "priority": 0});
    let columns = vec![
        col("Name", "string", "Name must be unique within a namespace."),
        col(
            "Desired",
            "integer",
            "replicas is the desired number of instances for the scaled object.",
        ),
        col(
            "Available",
            "integer",
            "replicas is the actual number of observed instances of the scaled object.",
        ),
        col(
            "Age",
            "string",
            "CreationTimestamp is a timestamp representing the server time when this object was created.",
        ),
    ];
    let age = crate::resources::table::since(
        scale
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str),
    );
    let cells = json!([
        meta_str(scale, "name"),
        scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        scale
            .pointer("/status/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        age,
    ]);
    let object = match include_object {
        "None" => Value::Null,
        "Object" => scale.clone(),
        _ => crate::resources::table::partial_metadata(scale),
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": meta_str(scale, "resourceVersion")},
        "columnDefinitions": columns,
        "rows": [{"cells": cells, "object": object}],
    })
}

/// Check a Scale body as kube decodes it: apiVersion and kind when given, unknown fields per
/// `fieldValidation`. Returns the normalized Scale and the warnings.
fn decode_scale(
    mut v: Value,
    dups: &[String],
    fv: FieldValidation,
) -> ApiResult<(Value, Vec<String>)> {
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a Scale object"));
    }
    match v.get("apiVersion").and_then(Value::as_str) {
        Some(a) if a != API_VERSION => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({a}) does not match the expected API version ({API_VERSION})"
            )));
        }
        _ => v["apiVersion"] = json!(API_VERSION),
    }
    match v.get("kind").and_then(Value::as_str) {
        Some(k) if k != "Scale" => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind (Scale)"
            )));
        }
        _ => v["kind"] = json!("Scale"),
    }
    let typed: k8s_openapi::api::autoscaling::v1::Scale = serde_json::from_value(v.clone())
        .map_err(|e| {
            ApiError::bad_request(format!(
                "Scale in version \"v1\" cannot be handled as a Scale: {e}"
            ))
        })?;
    let norm = serde_json::to_value(typed).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut problems: Vec<String> = crate::strict::unknown_fields(&v, &norm)
        .into_iter()
        .map(|u| format!("unknown field \"{u}\""))
        .collect();
    problems.extend(dups.iter().map(|d| format!("duplicate field \"{d}\"")));
    match fv {
        FieldValidation::Strict if !problems.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            problems.join(", ")
        ))),
        FieldValidation::Warn => Ok((norm, problems)),
        _ => Ok((norm, Vec::new())),
    }
}

/// What a write asks for: a whole Scale (PUT) or a patch of the current one.
enum Change {
    Put(Value, Vec<String>),
    Patch(PatchType, Value),
}

/// A GET, PUT or PATCH of `<parent>/scale`. Returns the HTTP code, the answer and warnings.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    api: &Api,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    method: &http::Method,
    content_type: &str,
    q: &Query,
    body: &[u8],
    repr: Repr,
) -> ApiResult<(u16, Value, Vec<String>)> {
    let render = |scale: Value| match repr {
        Repr::Table => table(&scale, q.get("includeObject").unwrap_or("Metadata")),
        Repr::PartialMetadata => crate::resources::table::partial_metadata(&scale),
        Repr::Object => scale,
    };
    let change = match *method {
        http::Method::GET => {
            let parent = api.get(def, ns, name).await?;
            return Ok((200, render(scale_of(&parent)), Vec::new()));
        }
        http::Method::PUT => {
            let (v, dups) = parse_body(body, content_type)?;
            Change::Put(v, dups)
        }
        http::Method::PATCH => {
            let pt = PatchType::from_content_type(content_type)
                .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
            let as_ct = if pt == PatchType::Apply {
                "application/yaml"
            } else {
                "application/json"
            };
            let (v, _) = parse_body(body, as_ct)?;
            Change::Patch(pt, v)
        }
        _ => return Err(ApiError::method_not_allowed(method.as_str())),
    };
    let opts = WriteOpts::from_query(q)?;
    let (parent, warnings) = write(api, def, ns, name, &change, &opts).await?;
    Ok((200, render(scale_of(&parent)), warnings))
}

/// Apply the change to the parent's Scale and write the parent; returns the written parent.
async fn write(
    api: &Api,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    change: &Change,
    opts: &WriteOpts,
) -> ApiResult<(Value, Vec<String>)> {
    let sub = format!("{}/scale", def.plural);
    for _ in 0..16 {
        let cur = api.get(def, ns, name).await?;
        let old = scale_of(&cur);
        let (new, warnings) = match change {
            Change::Put(v, dups) => decode_scale(v.clone(), dups, opts.field_validation)?,
            Change::Patch(pt, p) => {
                let mut target = old.clone();
                let schema = crate::patch::Schema::Type("io.k8s.api.autoscaling.v1.Scale");
                crate::patch::apply(*pt, &mut target, p, schema).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    )
                })?;
                decode_scale(target, &[], opts.field_validation)?
            }
        };
        let bname = meta_str(&new, "name");
        if !bname.is_empty() && bname != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({bname}) does not match the name on the URL ({name})"
            )));
        }
        let replicas = new
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                name,
                &[FieldError::invalid(
                    "spec.replicas",
                    &json!(replicas),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let uid = meta_str(&new, "uid");
        if !uid.is_empty() && uid != meta_str(&cur, "uid") {
            return Err(ApiError::conflict(
                def.group,
                &sub,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&cur, "uid")
                ),
            ));
        }
        // The client's own resourceVersion is a precondition; otherwise the write is unconditional
        // (retried here when another write got in between).
        let rv = meta_str(&new, "resourceVersion").to_string();
        let pinned = !rv.is_empty()
            && (matches!(change, Change::Put(..)) || rv != meta_str(&old, "resourceVersion"));
        let mut parent = cur.clone();
        parent["spec"]["replicas"] = json!(replicas);
        parent["metadata"]["resourceVersion"] = json!(if rv.is_empty() {
            meta_str(&cur, "resourceVersion").to_string()
        } else {
            rv
        });
        match api.update(def, ns, name, None, parent, &[], opts).await {
            Ok((written, _, _)) => return Ok((written, warnings)),
            Err(e) if e.code == 409 && e.reason == "Conflict" && !pinned => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::modified(def.group, def.plural, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "7",
                "creationTimestamp": "2024-01-01T00:00:00Z", "generation": 3, "labels": {"x": "y"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]}},
            "status": {"replicas": 2, "readyReplicas": 1}})
    }

    #[test]
    fn scale_from_parent() {
        let s = scale_of(&deployment());
        assert_eq!(s["kind"], "Scale");
        assert_eq!(s["apiVersion"], "autoscaling/v1");
        assert_eq!(
            s["metadata"],
            json!({"name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "7",
                "creationTimestamp": "2024-01-01T00:00:00Z"})
        );
        assert_eq!(s["spec"], json!({"replicas": 3}));
        assert_eq!(
            s["status"],
            json!({"replicas": 2, "selector": "app=web,env in (dev,prod),tier=fe"})
        );
        // Zero replicas: omitted in spec, present in status.
        let mut d = deployment();
        d["spec"]["replicas"] = json!(0);
        d.as_object_mut().map(|m| m.remove("status"));
        let s = scale_of(&d);
        assert_eq!(s["spec"], json!({}));
        assert_eq!(s["status"]["replicas"], 0);
    }

    #[test]
    fn scale_table_and_decoding() {
        let t = table(&scale_of(&deployment()), "None");
        assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(4));
        assert_eq!(t["rows"][0]["cells"][0], "web");
        assert_eq!(t["rows"][0]["cells"][1], 3);
        assert_eq!(t["rows"][0]["cells"][2], 2);
        let body = json!({"spec": {"replicas": 4, "bogus": 1}});
        let e = decode_scale(body.clone(), &[], FieldValidation::Strict).err();
        assert!(
            e.is_some_and(|e| e.code == 400 && e.message.contains("unknown field \"spec.bogus\""))
        );
        let (v, w) = decode_scale(body, &[], FieldValidation::Warn).unwrap_or_default();
        assert_eq!(v["spec"]["replicas"], 4);
        assert_eq!(w, vec!["unknown field \"spec.bogus\"".to_string()]);
        let e = decode_scale(json!({"kind": "Deployment"}), &[], FieldValidation::Strict).err();
        assert!(e.is_some_and(|e| e.code == 400));
    }
}
