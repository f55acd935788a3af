//! certificates.k8s.io/v1 CertificateSigningRequest as a served kind: the requestor stamped from the
//! authenticated user on create, an immutable spec, the `/approval` subresource, validation and the Table
//! columns kubectl shows (NAME AGE SIGNERNAME REQUESTOR REQUESTEDDURATION CONDITION).
//!
//! Approval and signing of node client certificates live in `crate::controllers::csr`.

use base64::Engine;
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::handlers::{Api, WriteOpts};
use crate::resources::ResourceDef;
use crate::status::{ApiError, ApiResult, FieldError};

pub const GROUP: &str = "certificates.k8s.io";
/// The signer of kubelet client certificates (the only signer skiff issues certificates for).
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// Round-trip through the k8s-openapi type (unknown fields dropped).
pub fn normalize(v: &Value) -> Result<Value, String> {
    use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
    let t: CertificateSigningRequest =
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

/// On create the requestor comes from the authenticated user, never from the body; status starts empty.
pub fn stamp_requestor(body: &mut Value, user: &UserInfo) {
    if !body.get("spec").is_some_and(Value::is_object) {
        return;
    }
    body["spec"]["username"] = json!(user.name);
    body["spec"]["uid"] = json!(user.uid);
    body["spec"]["groups"] = json!(crate::authz::effective_groups(user));
    if let Some(m) = body.as_object_mut() {
        m.remove("status");
    }
}

/// The decoded PEM of `spec.request`, if it is one.
pub fn request_pem(obj: &Value) -> Option<String> {
    let b64 = obj.pointer("/spec/request").and_then(Value::as_str)?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(raw).ok()
}

pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match request_pem(obj) {
        None => errs.push(FieldError::required(
            "spec.request",
            "a base64-encoded PEM certificate request is required",
        )),
        Some(pem) if !pem.contains("-----BEGIN CERTIFICATE REQUEST-----") => {
            errs.push(FieldError::invalid(
                "spec.request",
                &json!("<omitted>"),
                "PEM block type must be CERTIFICATE REQUEST",
            ))
        }
        Some(_) => {}
    }
    let signer = obj
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if signer.is_empty() {
        errs.push(FieldError::required(
            "spec.signerName",
            "signerName is required",
        ));
    } else if signer.split('/').count() != 2 {
        errs.push(FieldError::invalid(
            "spec.signerName",
            &json!(signer),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
    }
    if let Some(s) = obj
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        && s < 600
    {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            &json!(s),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    let conds = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has = |t: &str| {
        conds
            .iter()
            .any(|c| c.get("type").and_then(Value::as_str) == Some(t))
    };
    if has("Approved") && has("Denied") {
        errs.push(FieldError::invalid(
            "status.conditions",
            &json!("Approved,Denied"),
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    errs
}

pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old.get("spec") != new.get("spec") {
        errs.push(FieldError::forbidden("spec", "field is immutable"));
    }
    let old_cert = old
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .unwrap_or("");
    let new_cert = new
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !old_cert.is_empty() && old_cert != new_cert {
        errs.push(FieldError::forbidden(
            "status.certificate",
            "updates may not modify existing certificate content",
        ));
    }
    errs
}

/// `PUT …/certificatesigningrequests/<name>/approval`: only `status.conditions` of the body is taken.
pub async fn update_approval(
    api: &Api,
    def: &ResourceDef,
    name: &str,
    body: Value,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    let cur = api.get(def, None, name).await?;
    let mut next = cur.clone();
    let conds = body
        .pointer("/status/conditions")
        .cloned()
        .unwrap_or(json!([]));
    if !conds.is_array() {
        return Err(ApiError::bad_request("status.conditions must be a list"));
    }
    if !next.get("status").is_some_and(Value::is_object) {
        next["status"] = json!({});
    }
    next["status"]["conditions"] = conds;
    if let Some(rv) = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        next["metadata"]["resourceVersion"] = json!(rv);
    }
    let (obj, _, _) = api
        .update(def, None, name, Some("status"), next, &[], opts)
        .await?;
    Ok(obj)
}

fn col(name: &str, ty: &str, format: &str, desc: &str, priority: i32) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": desc, "priority": priority})
}

pub fn columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        age,
        col(
            "SignerName",
            "string",
            "",
            "The signer the request is for.",
            0,
        ),
        col(
            "Requestor",
            "string",
            "",
            "The user who created the request.",
            0,
        ),
        col(
            "RequestedDuration",
            "string",
            "",
            "The validity the requestor asked for.",
            0,
        ),
        col(
            "Condition",
            "string",
            "",
            "Approved, Denied or Failed, and Issued once signed.",
            0,
        ),
    ]
}

/// The CONDITION column: `Pending`, or the condition types joined with `,` and `Issued` once signed.
pub fn condition(obj: &Value) -> String {
    let mut parts: Vec<String> = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("type").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if obj
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty())
    {
        parts.push("Issued".into());
    }
    if parts.is_empty() {
        "Pending".into()
    } else {
        parts.join(",")
    }
}

pub fn cells(obj: &Value, name: String, age: String) -> Vec<Value> {
    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let duration = obj
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .map(crate::resources::table::human_duration)
        .unwrap_or_else(|| "<none>".into());
    vec![
        json!(name),
        json!(age),
        json!(s("/spec/signerName")),
        json!(s("/spec/username")),
        json!(duration),
        json!(condition(obj)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_column() {
        assert_eq!(condition(&json!({})), "Pending");
        let o = json!({"status": {"conditions": [{"type": "Approved"}], "certificate": "eA=="}});
        assert_eq!(condition(&o), "Approved,Issued");
    }

    #[test]
    fn spec_is_immutable_and_certificate_write_once() {
        let old = json!({"spec": {"signerName": "a/b"}, "status": {"certificate": "eA=="}});
        let mut new = old.clone();
        assert!(validate_update(&old, &new).is_empty());
        new["spec"]["signerName"] = json!("c/d");
        new["status"]["certificate"] = json!("eQ==");
        assert_eq!(validate_update(&old, &new).len(), 2);
    }
}
