//! The configMaps and secrets a pod refers to (volumes, projected sources, env, envFrom), fetched
//! from the API server by name; a missing object is remembered as absent, not as an error.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::Api;

/// Names referenced by a pod or a container.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refs {
    pub config_maps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
}

impl Refs {
    /// What the pod's volumes (including projected sources) refer to.
    pub fn volumes(pod: &Pod) -> Self {
        let mut r = Refs::default();
        for v in pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
        {
            if let Some(n) = v.config_map.as_ref().map(|c| c.name.clone()) {
                r.config_maps.insert(n);
            }
            if let Some(n) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
                r.secrets.insert(n);
            }
            for s in v
                .projected
                .as_ref()
                .and_then(|p| p.sources.as_ref())
                .into_iter()
                .flatten()
            {
                if let Some(c) = &s.config_map {
                    r.config_maps.insert(c.name.clone());
                }
                if let Some(c) = &s.secret {
                    r.secrets.insert(c.name.clone());
                }
            }
        }
        r
    }

    /// What a container's env and envFrom refer to.
    pub fn container(c: &Container) -> Self {
        let mut r = Refs::default();
        for e in c.env.iter().flatten() {
            if let Some(from) = &e.value_from {
                if let Some(k) = &from.config_map_key_ref {
                    r.config_maps.insert(k.name.clone());
                }
                if let Some(k) = &from.secret_key_ref {
                    r.secrets.insert(k.name.clone());
                }
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(k) = &e.config_map_ref {
                r.config_maps.insert(k.name.clone());
            }
            if let Some(k) = &e.secret_ref {
                r.secrets.insert(k.name.clone());
            }
        }
        r
    }

    pub fn is_empty(&self) -> bool {
        self.config_maps.is_empty() && self.secrets.is_empty()
    }
}

/// Fetched objects; `None` means the API server says the object does not exist.
#[derive(Debug, Default, Clone)]
pub struct Objects {
    pub namespace: String,
    pub config_maps: HashMap<String, Option<ConfigMap>>,
    pub secrets: HashMap<String, Option<Secret>>,
    /// Service-account tokens of the pod's projected volumes (see [`super::tokens`]).
    pub tokens: HashMap<super::tokens::Want, String>,
    /// The pod's `persistentVolumeClaim` and `ephemeral` volumes, resolved (volume name → claim; see
    /// [`super::claims`]).
    pub claims: HashMap<String, super::claims::Resolved>,
}

impl Objects {
    /// GET every referenced object. A transport or permission error is an error (the caller retries);
    /// 404 is recorded as absent.
    pub async fn fetch(
        client: &kube::Client,
        namespace: &str,
        refs: &Refs,
    ) -> Result<Self, String> {
        let mut out = Objects {
            namespace: namespace.to_string(),
            ..Default::default()
        };
        if refs.is_empty() {
            return Ok(out);
        }
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        for name in &refs.config_maps {
            let got = cms
                .get_opt(name)
                .await
                .map_err(|e| format!("couldn't get configMap {namespace}/{name}: {e}"))?;
            out.config_maps.insert(name.clone(), got);
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        for name in &refs.secrets {
            let got = secrets
                .get_opt(name)
                .await
                .map_err(|e| format!("couldn't get secret {namespace}/{name}: {e}"))?;
            out.secrets.insert(name.clone(), got);
        }
        Ok(out)
    }

    /// What the pod's volumes need: the configMaps and secrets they name, and their service-account tokens.
    pub async fn for_volumes(
        client: &kube::Client,
        tokens: &super::tokens::Tokens,
        pod: &Pod,
    ) -> Result<Self, String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let mut out = Self::fetch(client, ns, &Refs::volumes(pod)).await?;
        out.tokens = tokens.for_pod(client, pod).await?;
        Ok(out)
    }

    /// The configMap's keys and values (`data` and `binaryData`), or the kubelet's not-found error.
    pub fn config_map(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let Some(Some(cm)) = self.config_maps.get(name) else {
            return Err(format!("configmap {name:?} not found"));
        };
        let mut out: BTreeMap<String, Vec<u8>> = cm
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        for (k, v) in cm.binary_data.iter().flatten() {
            out.insert(k.clone(), v.0.clone());
        }
        Ok(out)
    }

    /// The configMap's `data` only: what env and envFrom see (the kubelet ignores `binaryData` there).
    pub fn config_map_env(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let Some(Some(cm)) = self.config_maps.get(name) else {
            return Err(format!("configmap {name:?} not found"));
        };
        Ok(cm
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect())
    }

    /// The secret's keys and decoded values (`stringData` too, should a server not have merged it).
    pub fn secret(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let Some(Some(s)) = self.secrets.get(name) else {
            return Err(format!("secret {name:?} not found"));
        };
        let mut out: BTreeMap<String, Vec<u8>> = s
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in s.string_data.iter().flatten() {
            out.insert(k.clone(), v.as_bytes().to_vec());
        }
        Ok(out)
    }
}
