//! The root CA publisher (kube-controller-manager's `root-ca-cert-publisher`): every namespace that is not
//! terminating has a ConfigMap `kube-root-ca.crt` with `data: {ca.crt: <cluster CA PEM>}`. It is created
//! when a namespace appears and put back when deleted or changed. Pods read it through the
//! `kube-api-access-*` projected volume (`serviceaccount::admission`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::reflector::{Change, Reflector};
use crate::handlers::{Api, WriteOpts};
use crate::resources::{Kind, by_kind};
use crate::serviceaccount::admission::ROOT_CA_CONFIGMAP;
use crate::status::ApiResult;
use crate::store::{KeyValue, Store};

const MANAGER: &str = "kube-controller-manager";
const DATA_KEY: &str = "ca.crt";
/// kube-controller-manager's annotation on the ConfigMap.
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
const RETRY_INTERVAL: Duration = Duration::from_secs(5);

fn write_opts() -> WriteOpts {
    super::object::write_opts(MANAGER)
}

/// The ConfigMap as the publisher creates it.
pub fn config_map(ns: &str, ca_pem: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": ns,
                     "annotations": {"kubernetes.io/description": DESCRIPTION}},
        "data": {DATA_KEY: ca_pem},
    })
}

/// The namespace a stored key under `prefix` belongs to, for namespace keys (`<prefix><ns>`) or
/// namespaced keys (`<prefix><ns>/<name>`) with `name` (when given).
fn key_namespace<'a>(key: &'a str, prefix: &str, name: Option<&str>) -> Option<&'a str> {
    let rest = key.strip_prefix(prefix)?;
    match name {
        None => Some(rest),
        Some(n) => {
            let (ns, obj) = rest.split_once('/')?;
            (obj == n).then_some(ns)
        }
    }
}

fn namespaces_of(kvs: &[KeyValue], prefix: &str, name: Option<&str>) -> Vec<String> {
    kvs.iter()
        .filter_map(|kv| key_namespace(&kv.key, prefix, name))
        .map(str::to_string)
        .collect()
}

/// Keep the ConfigMaps until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    ca_pem: String,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let ns_prefix = by_kind(Kind::Namespace).prefix(None);
    let cm_prefix = by_kind(Kind::ConfigMap).prefix(None);
    let mut namespaces = Reflector::new(store.clone(), &ns_prefix);
    let mut config_maps = Reflector::new(store, &cm_prefix);
    let mut dirty = BTreeSet::new();
    let mut retry = tokio::time::interval(RETRY_INTERVAL);
    while !*shutdown.borrow() {
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = namespaces.next() => match change {
                Change::Reset(kvs) => dirty.extend(namespaces_of(&kvs, &ns_prefix, None)),
                Change::Put(kv) => dirty.extend(namespaces_of(&[kv], &ns_prefix, None)),
                Change::Delete(_) => {}
            },
            change = config_maps.next() => match change {
                // A listing shows what exists, not what is missing: namespaces' listing covers that.
                Change::Reset(_) => {}
                Change::Put(kv) | Change::Delete(kv) => {
                    dirty.extend(namespaces_of(&[kv], &cm_prefix, Some(ROOT_CA_CONFIGMAP)))
                }
            },
            _ = retry.tick() => {}
        }
        let mut failed = BTreeSet::new();
        for ns in std::mem::take(&mut dirty) {
            if let Err(e) = sync(&api, &ns, &ca_pem).await {
                tracing::warn!(namespace = %ns, error = %e.message,
                    "failed to publish kube-root-ca.crt; will retry");
                failed.insert(ns);
            }
        }
        dirty = failed;
    }
    Ok(())
}

/// Create or correct the ConfigMap of one namespace (nothing for a missing or terminating namespace).
pub async fn sync(api: &Api, ns: &str, ca_pem: &str) -> ApiResult<()> {
    let namespace = match api.get(by_kind(Kind::Namespace), None, ns).await {
        Ok(n) => n,
        Err(e) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e),
    };
    if namespace
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Ok(());
    }
    let def = by_kind(Kind::ConfigMap);
    match api.get(def, Some(ns), ROOT_CA_CONFIGMAP).await {
        Ok(current) => {
            let want = json!({DATA_KEY: ca_pem});
            if current.get("data") == Some(&want)
                && current.get("binaryData").is_none_or(Value::is_null)
            {
                return Ok(());
            }
            let mut next = current;
            next["data"] = want;
            if let Some(m) = next.as_object_mut() {
                m.remove("binaryData");
            }
            match api
                .update(
                    def,
                    Some(ns),
                    ROOT_CA_CONFIGMAP,
                    None,
                    next,
                    &[],
                    &write_opts(),
                )
                .await
            {
                // Changed again meanwhile: the watch brings it back here.
                Err(e) if e.code == 409 || e.code == 404 => Ok(()),
                Err(e) => Err(e),
                Ok(_) => {
                    tracing::info!(namespace = %ns, "restored kube-root-ca.crt");
                    Ok(())
                }
            }
        }
        Err(e) if e.code == 404 => {
            match api
                .create(def, Some(ns), config_map(ns, ca_pem), &[], &write_opts())
                .await
            {
                // 403: the namespace started terminating.
                Err(e) if e.code == 409 || e.code == 403 => Ok(()),
                Err(e) => Err(e),
                Ok(_) => Ok(()),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_to_namespaces() {
        let p = "/registry/configmaps/";
        assert_eq!(
            key_namespace(
                "/registry/configmaps/a/kube-root-ca.crt",
                p,
                Some(ROOT_CA_CONFIGMAP)
            ),
            Some("a")
        );
        assert_eq!(
            key_namespace("/registry/configmaps/a/other", p, Some(ROOT_CA_CONFIGMAP)),
            None
        );
        assert_eq!(
            key_namespace("/registry/namespaces/x", "/registry/namespaces/", None),
            Some("x")
        );
        let cm = config_map("x", "PEM");
        assert_eq!(cm["data"], json!({"ca.crt": "PEM"}));
        assert_eq!(cm["metadata"]["name"], "kube-root-ca.crt");
    }
}
