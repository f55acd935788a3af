//! Service-account tokens for projected `serviceAccountToken` sources, as the kubelet's token manager
//! gets them: a TokenRequest for the pod's service account, bound to the pod (so the token dies with it),
//! asked with the node's credentials. Tokens are cached per (pod, audience, lifetime) and asked again once
//! 80 % of their lifetime has passed or they are 24 h old; the volume re-sync then writes the new one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};

/// The lifetime asked when a source does not say (the API's default for `expirationSeconds`).
pub const DEFAULT_EXPIRATION: i64 = 3600;
/// Tokens older than this are replaced whatever their lifetime.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// One token a pod's volumes need: audience (`None`: the API server's) and lifetime in seconds.
pub type Want = (Option<String>, i64);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    pod_uid: String,
    audience: Option<String>,
    expiration: i64,
}

#[derive(Debug, Clone)]
struct Cached {
    token: String,
    issued: SystemTime,
    expires: SystemTime,
}

impl Cached {
    /// The kubelet's rule: past 80 % of the lifetime, or older than 24 h.
    fn needs_refresh(&self, now: SystemTime) -> bool {
        let ttl = self.expires.duration_since(self.issued).unwrap_or_default();
        let age = now.duration_since(self.issued).unwrap_or_default();
        age >= ttl.mul_f64(0.8) || age >= MAX_AGE
    }
}

/// The tokens of every pod on this node.
#[derive(Debug, Default)]
pub struct Tokens {
    cache: Mutex<HashMap<Key, Cached>>,
}

/// The `serviceAccountToken` sources of a pod's projected volumes.
pub fn wanted(pod: &Pod) -> Vec<Want> {
    let mut out: Vec<Want> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|s| s.service_account_token.as_ref())
        .map(|t| {
            (
                t.audience.clone().filter(|a| !a.is_empty()),
                t.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION),
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

impl Tokens {
    /// The pod's tokens, from the cache or asked from the API server.
    pub async fn for_pod(
        &self,
        client: &kube::Client,
        pod: &Pod,
    ) -> Result<HashMap<Want, String>, String> {
        let mut out = HashMap::new();
        for want in wanted(pod) {
            let token = self.get(client, pod, &want).await?;
            out.insert(want, token);
        }
        Ok(out)
    }

    async fn get(&self, client: &kube::Client, pod: &Pod, want: &Want) -> Result<String, String> {
        let meta = &pod.metadata;
        let (ns, name, uid) = (
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.clone().unwrap_or_default(),
            meta.uid.clone().unwrap_or_default(),
        );
        let key = Key {
            pod_uid: uid.clone(),
            audience: want.0.clone(),
            expiration: want.1,
        };
        let now = SystemTime::now();
        if let Some(c) = self.lock().get(&key).filter(|c| !c.needs_refresh(now)) {
            return Ok(c.token.clone());
        }
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into());
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: want.0.clone().map(|a| vec![a]),
                expiration_seconds: Some(want.1),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(name),
                    uid: Some(uid),
                }),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        let answer = api
            .create_token_request(&sa, &PostParams::default(), &request)
            .await
            .map_err(|e| format!("failed to fetch token: {e}"))?;
        let status = answer
            .status
            .ok_or("failed to fetch token: the TokenRequest has no status")?;
        let token = status
            .token
            .filter(|t| !t.is_empty())
            .ok_or("failed to fetch token: the TokenRequest has no token")?;
        // Without an expiry in the answer, the lifetime asked.
        let expires = match status.expiration_timestamp {
            Some(t) => {
                SystemTime::UNIX_EPOCH
                    + Duration::from_secs(u64::try_from(t.0.as_second()).unwrap_or_default())
            }
            None => now + Duration::from_secs(u64::try_from(want.1).unwrap_or_default()),
        };
        let cached = Cached {
            token,
            issued: now,
            expires: expires.max(now),
        };
        let token = cached.token.clone();
        let mut cache = self.lock();
        cache.retain(|_, c| c.expires > now);
        cache.insert(key, cached);
        Ok(token)
    }

    /// Drop a pod's tokens (the pod is gone).
    pub fn forget(&self, pod_uid: &str) {
        self.lock().retain(|k, _| k.pod_uid != pod_uid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Cached>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refresh_at_80_percent_or_a_day() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let c = Cached {
            token: "t".into(),
            issued: t0,
            expires: t0 + Duration::from_secs(3600),
        };
        assert!(!c.needs_refresh(t0 + Duration::from_secs(2879)));
        assert!(c.needs_refresh(t0 + Duration::from_secs(2880)));
        let long = Cached {
            expires: t0 + Duration::from_secs(365 * 24 * 3600),
            ..c
        };
        assert!(!long.needs_refresh(t0 + Duration::from_secs(23 * 3600)));
        assert!(long.needs_refresh(t0 + MAX_AGE));
    }

    #[test]
    fn wanted_sources() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [], "volumes": [
                {"name": "a", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                    {"configMap": {"name": "kube-root-ca.crt"}},
                ]}},
                {"name": "b", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "vault", "audience": "vault"}},
                    {"serviceAccountToken": {"path": "again", "expirationSeconds": 3607}},
                ]}},
                {"name": "c", "emptyDir": {}},
            ]},
        }))
        .expect("pod");
        assert_eq!(
            wanted(&pod),
            vec![
                (None, 3607),
                (Some("vault".to_string()), DEFAULT_EXPIRATION)
            ]
        );
    }
}
