//! Approves and signs node client certificates (kube-controller-manager's `csrapproving` and
//! `csrsigning` for the signer `kubernetes.io/kube-apiserver-client-kubelet`).
//!
//! A pending CSR for that signer is approved when its subject is exactly `CN=system:node:<name>,
//! O=system:nodes`, its usages are client auth (plus digital signature / key encipherment), and it comes
//! from a bootstrap token (`system:bootstrappers`, a new node) or from `system:node:<name>` itself (renewal).
//! A malformed subject or usages, or a node asking for another node's name, is denied with the reason in
//! the condition's message; requests by other users stay pending for an admin (`kubectl certificate
//! approve`). Approved requests with a valid subject are signed with the cluster CA into `status.certificate`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::bootstrap_tokens::BOOTSTRAPPERS_GROUP;
use crate::csr::{KUBELET_CLIENT_SIGNER, request_pem};
use crate::pki::Signer;
use crate::resources::{Kind, by_kind};
use crate::store::{KeyValue, Store, StoreError, WatchEvent};

use super::object::{now_rfc3339, strip_resource_version};

pub const NODES_GROUP: &str = "system:nodes";
/// Validity of issued node certificates when the request does not ask for less (kube-controller-manager's
/// `--cluster-signing-duration` default).
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
const ALLOWED_USAGES: &[&str] = &["digital signature", "key encipherment", "client auth"];

/// What the approver makes of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Approve (if not yet) and sign for this node name.
    Approve(String),
    /// A valid subject from a requestor this loop does not vouch for: leave it to an admin.
    Pending(String),
    Deny(String),
}

/// The verdict on a request for the kubelet client signer.
pub fn check_request(obj: &Value) -> Verdict {
    let node = match check_subject(obj) {
        Ok(n) => n,
        Err(why) => return Verdict::Deny(why),
    };
    let cn = format!("system:node:{node}");
    let user = obj
        .pointer("/spec/username")
        .and_then(Value::as_str)
        .unwrap_or("");
    let groups: Vec<&str> = obj
        .pointer("/spec/groups")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let bootstrap = user.starts_with("system:bootstrap:") && groups.contains(&BOOTSTRAPPERS_GROUP);
    let is_node = user.starts_with("system:node:") && groups.contains(&NODES_GROUP);
    if bootstrap || (is_node && user == cn) {
        Verdict::Approve(node)
    } else if is_node {
        Verdict::Deny(format!(
            "{user:?} may not request a client certificate for {cn:?}: a node may only renew its own"
        ))
    } else {
        Verdict::Pending(node)
    }
}

/// The node name of a request's subject, or why the subject or usages are not a node client's.
pub fn check_subject(obj: &Value) -> Result<String, String> {
    let pem = request_pem(obj).ok_or("spec.request is not a base64-encoded PEM")?;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| format!("spec.request is not PEM: {e}"))?;
    let (_, req) = <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<'_, _>>::from_der(&block.contents)
        .map_err(|e| format!("spec.request is not a certificate request: {e}"))?;
    let subject = &req.certification_request_info.subject;
    let mut cns = Vec::new();
    let mut orgs = Vec::new();
    for attr in subject.iter_attributes() {
        let v = attr
            .as_str()
            .map_err(|_| "the subject has a value that is not a string".to_string())?;
        if attr.attr_type() == &x509_parser::oid_registry::OID_X509_COMMON_NAME {
            cns.push(v.to_string());
        } else if attr.attr_type() == &x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME {
            orgs.push(v.to_string());
        } else {
            return Err(format!(
                "the subject may only hold CN and O, it has {}",
                attr.attr_type()
            ));
        }
    }
    if orgs != [NODES_GROUP] {
        return Err(format!(
            "the subject's organization must be exactly {NODES_GROUP:?}, got {orgs:?}"
        ));
    }
    let cn = match cns.as_slice() {
        [cn] => cn.clone(),
        _ => {
            return Err(format!(
                "the subject must have one common name, got {cns:?}"
            ));
        }
    };
    let node = cn
        .strip_prefix("system:node:")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("the common name must be system:node:<name>, got {cn:?}"))?
        .to_string();
    let usages: Vec<&str> = obj
        .pointer("/spec/usages")
        .and_then(Value::as_array)
        .map(|u| u.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !usages.contains(&"client auth") || usages.iter().any(|u| !ALLOWED_USAGES.contains(u)) {
        return Err(format!(
            "usages must be client auth (with digital signature, key encipherment), got {usages:?}"
        ));
    }
    Ok(node)
}

fn has_condition(obj: &Value, t: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.get("type").and_then(Value::as_str) == Some(t))
        })
}

fn push_condition(obj: &mut Value, t: &str, reason: &str, message: &str) {
    let now = now_rfc3339();
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    if !obj["status"].get("conditions").is_some_and(Value::is_array) {
        obj["status"]["conditions"] = json!([]);
    }
    if let Some(cs) = obj["status"]["conditions"].as_array_mut() {
        cs.push(
            json!({"type": t, "status": "True", "reason": reason, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now}),
        );
    }
}

/// What to do with one stored CSR: the new object to write, if any.
pub fn reconcile(obj: &Value, signer: &Signer) -> Option<Value> {
    if obj.pointer("/spec/signerName").and_then(Value::as_str) != Some(KUBELET_CLIENT_SIGNER)
        || has_condition(obj, "Denied")
        || has_condition(obj, "Failed")
        || obj
            .pointer("/status/certificate")
            .and_then(Value::as_str)
            .is_some_and(|c| !c.is_empty())
    {
        return None;
    }
    let mut next = obj.clone();
    strip_resource_version(&mut next);
    let node = match check_request(obj) {
        Verdict::Approve(n) => n,
        Verdict::Pending(n) if has_condition(obj, "Approved") => n,
        Verdict::Pending(_) => return None,
        Verdict::Deny(why) => {
            tracing::info!(csr = ?obj.pointer("/metadata/name"), %why, "denying a node client CSR");
            push_condition(&mut next, "Denied", "SubjectNotAllowed", &why);
            return Some(next);
        }
    };
    if !has_condition(obj, "Approved") {
        push_condition(
            &mut next,
            "Approved",
            "AutoApproved",
            "Auto approving kubelet client certificate after SubjectAccessReview.",
        );
    }
    let validity = obj
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_u64)
        .map(|s| Duration::from_secs(s.max(600)).min(DEFAULT_VALIDITY))
        .unwrap_or(DEFAULT_VALIDITY);
    let pem = request_pem(obj).unwrap_or_default();
    match signer.sign_client_csr(&pem, &format!("system:node:{node}"), NODES_GROUP, validity) {
        Ok(cert) => {
            next["status"]["certificate"] =
                json!(base64::engine::general_purpose::STANDARD.encode(cert.as_bytes()));
            tracing::info!(%node, "issued a node client certificate");
        }
        Err(e) => push_condition(&mut next, "Failed", "SigningError", &format!("{e:#}")),
    }
    Some(next)
}

async fn handle(store: &dyn Store, signer: &Signer, kv: &KeyValue) -> Result<(), StoreError> {
    let Ok(obj) = serde_json::from_slice::<Value>(&kv.value) else {
        return Ok(());
    };
    let Some(next) = reconcile(&obj, signer) else {
        return Ok(());
    };
    let bytes = serde_json::to_vec(&next).map_err(|e| StoreError::Backend(e.to_string()))?;
    match store.update(&kv.key, bytes, kv.mod_revision).await {
        Ok(_) | Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// List then watch the CSRs until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    signer: Signer,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let prefix = by_kind(Kind::CertificateSigningRequest).prefix(None);
    loop {
        if let Err(e) = pass(store.as_ref(), &signer, &prefix, &mut shutdown).await {
            tracing::warn!("CSR controller: {e}");
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return; },
        }
    }
}

async fn pass(
    store: &dyn Store,
    signer: &Signer,
    prefix: &str,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let (kvs, rev) = store.list(prefix).await?;
    for kv in &kvs {
        handle(store, signer, kv).await?;
    }
    let mut events = store.watch(prefix, rev).await?;
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(WatchEvent::Put { kv, .. })) => handle(store, signer, &kv).await?,
                Some(Ok(WatchEvent::Delete { .. })) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return Ok(()); },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(cn: &str, orgs: &[&str], user: &str, groups: &[&str], usages: &[&str]) -> Value {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        let mut dn = rcgen::DistinguishedName::new();
        for o in orgs {
            dn.push(rcgen::DnType::OrganizationName, *o);
        }
        dn.push(rcgen::DnType::CommonName, cn);
        p.distinguished_name = dn;
        let pem = p
            .serialize_request(&key)
            .and_then(|c| c.pem())
            .expect("csr");
        json!({"spec": {"request": base64::engine::general_purpose::STANDARD.encode(pem),
            "signerName": KUBELET_CLIENT_SIGNER, "usages": usages, "username": user, "groups": groups}})
    }

    #[test]
    fn verdicts() {
        let ok = ["digital signature", "client auth"];
        let boot = ["system:bootstrappers", "system:authenticated"];
        let node = ["system:nodes", "system:authenticated"];
        let v = |c: &Value| check_request(c);
        let n1 = "system:node:n1";
        assert_eq!(
            v(&csr(
                n1,
                &["system:nodes"],
                "system:bootstrap:abcdef",
                &boot,
                &ok
            )),
            Verdict::Approve("n1".into())
        );
        assert_eq!(
            v(&csr(n1, &["system:nodes"], n1, &node, &ok)),
            Verdict::Approve("n1".into())
        );
        assert!(matches!(
            v(&csr(n1, &["system:nodes"], "system:node:n2", &node, &ok)),
            Verdict::Deny(_)
        ));
        assert_eq!(
            v(&csr(n1, &["system:nodes"], "alice", &["devs"], &ok)),
            Verdict::Pending("n1".into())
        );
        for bad in [
            csr(
                n1,
                &["system:masters"],
                "system:bootstrap:abcdef",
                &boot,
                &ok,
            ),
            csr(
                n1,
                &["system:nodes", "x"],
                "system:bootstrap:abcdef",
                &boot,
                &ok,
            ),
            csr(
                "n1",
                &["system:nodes"],
                "system:bootstrap:abcdef",
                &boot,
                &ok,
            ),
            csr(
                n1,
                &["system:nodes"],
                "system:bootstrap:abcdef",
                &boot,
                &["server auth"],
            ),
            json!({"spec": {"request": "bm90IGEgY3Ny", "usages": ok}}),
        ] {
            assert!(matches!(v(&bad), Verdict::Deny(_)), "{bad}");
        }
    }
}
