//! kube-apiserver's ServiceAccount admission plugin, on pod create: the pod runs as `default` unless it
//! names a service account, which must exist; and unless automounting is off (the pod's
//! `automountServiceAccountToken`, else the service account's) every container and init container gets the
//! `kube-api-access-<suffix>` projected volume (token, `kube-root-ca.crt`, namespace) at
//! [`MOUNT_PATH`]. Mirror pods are left alone.

use serde_json::{Value, json};

use crate::authz::node::MIRROR_ANNOTATION;
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};

pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The root CA ConfigMap every namespace has (`controllers::root_ca`).
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// The token lifetime the projected volume asks for (kube's `WarnOnlyBoundTokenExpirationSeconds`).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

fn is_mirror(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(MIRROR_ANNOTATION))
        .is_some()
}

/// Whether the token is mounted: the pod's setting wins, then the service account's, default yes.
pub fn should_automount(pod: &Value, sa: &Value) -> bool {
    pod.pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true)
}

/// The projected volume kube-apiserver adds.
pub fn api_access_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

/// Add the volume and the mounts (kube's `mountServiceAccountToken`): containers that already mount
/// something at [`MOUNT_PATH`] keep it; an existing `kube-api-access-*` volume is reused; the volume is added
/// only when some container mounts it. `suffix` names a new volume.
pub fn mount_token(pod: &mut Value, suffix: &str) {
    let spec = &mut pod["spec"];
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with(VOLUME_PREFIX))
        .map(str::to_string);
    let name = existing
        .clone()
        .unwrap_or_else(|| format!("{VOLUME_PREFIX}{suffix}"));
    let mount = json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in cs {
            let has = c
                .get("volumeMounts")
                .and_then(Value::as_array)
                .is_some_and(|ms| {
                    ms.iter()
                        .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH))
                });
            if has {
                continue;
            }
            match c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                Some(ms) => ms.push(mount.clone()),
                None => c["volumeMounts"] = json!([mount.clone()]),
            }
            needed = true;
        }
    }
    if needed && existing.is_none() {
        match spec.get_mut("volumes").and_then(Value::as_array_mut) {
            Some(vs) => vs.push(api_access_volume(&name)),
            None => spec["volumes"] = json!([api_access_volume(&name)]),
        }
    }
}

/// Set the service account name (and the deprecated `serviceAccount`) to `default` when empty. Returns it.
pub fn default_service_account(pod: &mut Value) -> String {
    let name = match pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
    {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => "default".to_string(),
    };
    pod["spec"]["serviceAccountName"] = json!(name);
    pod["spec"]["serviceAccount"] = json!(name);
    name
}

/// Admit a pod being created in `ns` (its name already set, the namespace known to exist).
pub async fn admit_pod(api: &Api, ns: &str, pod: &mut Value) -> ApiResult<()> {
    if is_mirror(pod) {
        return Ok(());
    }
    if pod.get("spec").is_none_or(|s| !s.is_object()) {
        pod["spec"] = json!({});
    }
    let sa_name = default_service_account(pod);
    if sa_name == "default" {
        // A namespace created a moment ago may not have its `default` yet.
        api.ensure_default_service_account(ns).await;
    }
    let sa = match api
        .get(by_kind(Kind::ServiceAccount), Some(ns), &sa_name)
        .await
    {
        Ok(sa) => sa,
        Err(e) if e.code == 404 => {
            let pod_name = pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let mut err = ApiError::forbidden(format!(
                "pods {pod_name:?} is forbidden: error looking up service account {ns}/{sa_name}: serviceaccount {sa_name:?} not found"
            ));
            err.details = Some(json!({"name": pod_name, "kind": "pods"}));
            return Err(err);
        }
        Err(e) => return Err(e),
    };
    if should_automount(pod, &sa) {
        mount_token(pod, &crate::handlers::random_suffix());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "i", "image": "busybox"}],
            "containers": [
                {"name": "a", "image": "busybox", "volumeMounts": [{"name": "data", "mountPath": "/d"}]},
                {"name": "b", "image": "busybox"}],
            "volumes": [{"name": "data", "emptyDir": {}}]}})
    }

    #[test]
    fn volume_and_mounts_in_every_container() {
        let mut p = pod();
        assert_eq!(default_service_account(&mut p), "default");
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["serviceAccount"], "default");
        mount_token(&mut p, "x2b4z");
        let vols = p["spec"]["volumes"].as_array().expect("volumes");
        assert_eq!(vols.len(), 2);
        assert_eq!(
            vols[1],
            json!({"name": "kube-api-access-x2b4z", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}})
        );
        let want = json!({"name": "kube-api-access-x2b4z", "readOnly": true,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"});
        assert_eq!(
            p["spec"]["initContainers"][0]["volumeMounts"],
            json!([want])
        );
        assert_eq!(p["spec"]["containers"][0]["volumeMounts"][1], want);
        assert_eq!(p["spec"]["containers"][1]["volumeMounts"], json!([want]));
        // Validation is happy with the result.
        assert!(crate::resources::pod::validate(&p).is_empty());
    }

    #[test]
    fn given_service_account_is_kept() {
        let mut p = json!({"spec": {"serviceAccountName": "builder", "containers": []}});
        assert_eq!(default_service_account(&mut p), "builder");
        assert_eq!(p["spec"]["serviceAccount"], "builder");
    }

    #[test]
    fn opt_out_by_pod_or_service_account() {
        let sa_on = json!({"metadata": {"name": "default"}});
        let sa_off =
            json!({"metadata": {"name": "default"}, "automountServiceAccountToken": false});
        let mut p = pod();
        assert!(should_automount(&p, &sa_on));
        assert!(!should_automount(&p, &sa_off));
        p["spec"]["automountServiceAccountToken"] = json!(false);
        assert!(!should_automount(&p, &sa_on));
        // The pod's explicit true beats the service account's false.
        p["spec"]["automountServiceAccountToken"] = json!(true);
        assert!(should_automount(&p, &sa_off));
    }

    #[test]
    fn existing_mount_or_volume_is_respected() {
        let mut p = pod();
        p["spec"]["containers"][1]["volumeMounts"] =
            json!([{"name": "data", "mountPath": MOUNT_PATH}]);
        mount_token(&mut p, "abcde");
        // b keeps its own mount; a and i get the token volume.
        assert_eq!(
            p["spec"]["containers"][1]["volumeMounts"],
            json!([{"name": "data", "mountPath": MOUNT_PATH}])
        );
        assert_eq!(
            p["spec"]["containers"][0]["volumeMounts"][1]["name"],
            "kube-api-access-abcde"
        );
        assert_eq!(p["spec"]["volumes"].as_array().map(Vec::len), Some(2));

        // Every container mounting the path: no volume added at all.
        let mut q = json!({"spec": {"containers": [{"name": "a", "image": "x",
            "volumeMounts": [{"name": "own", "mountPath": MOUNT_PATH}]}],
            "volumes": [{"name": "own", "emptyDir": {}}]}});
        mount_token(&mut q, "abcde");
        assert_eq!(q["spec"]["volumes"].as_array().map(Vec::len), Some(1));

        // An existing kube-api-access volume is reused, not duplicated.
        let mut r = json!({"spec": {"containers": [{"name": "a", "image": "x"}],
            "volumes": [api_access_volume("kube-api-access-old00")]}});
        mount_token(&mut r, "abcde");
        assert_eq!(r["spec"]["volumes"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            r["spec"]["containers"][0]["volumeMounts"][0]["name"],
            "kube-api-access-old00"
        );
    }

    #[test]
    fn mirror_pods_are_exempt() {
        let p = json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "x"}}});
        assert!(is_mirror(&p));
        assert!(!is_mirror(&pod()));
    }
}
