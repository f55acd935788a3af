//! The files of configMap, secret, downwardAPI and projected volumes, as the kubelet lays them out
//! (keys or items, `defaultMode` 0644, per-item modes, `optional`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, DownwardAPIVolumeFile, KeyToPath, Pod, ProjectedVolumeSource,
    SecretVolumeSource,
};

use super::atomic::{FileProjection, Payload, validate_path};
use super::objects::Objects;
use crate::pods::env::{self, Downward};

/// The API's default for `defaultMode` on configMap, secret, downwardAPI and projected volumes.
pub const DEFAULT_MODE: i32 = 0o644;

fn mode(m: Option<i32>, default: i32) -> Result<u32, String> {
    let m = m.unwrap_or(default);
    if !(0..=0o777).contains(&m) {
        return Err(format!("file mode {m:o} must be between 0 and 0777"));
    }
    Ok(m as u32)
}

/// Keys (or the chosen items) of a configMap or secret; `what` is `configmap` or `secret`.
fn keyed(
    data: Result<BTreeMap<String, Vec<u8>>, String>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
    missing_key: &str,
) -> Result<Payload, String> {
    let default = default_mode.unwrap_or(DEFAULT_MODE);
    let data = match data {
        Ok(d) => d,
        Err(_) if optional => return Ok(Payload::new()),
        Err(e) => return Err(e),
    };
    let mut out = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                validate_path(&k)?;
                out.insert(
                    k,
                    FileProjection {
                        data: v,
                        mode: mode(None, default)?,
                    },
                );
            }
        }
        Some(items) => {
            for it in items {
                let Some(v) = data.get(&it.key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!("{missing_key}: {}", it.key));
                };
                validate_path(&it.path)?;
                out.insert(
                    it.path.clone(),
                    FileProjection {
                        data: v.clone(),
                        mode: mode(it.mode, default)?,
                    },
                );
            }
        }
    }
    Ok(out)
}

pub fn config_map(v: &ConfigMapVolumeSource, objects: &Objects) -> Result<Payload, String> {
    keyed(
        objects.config_map(&v.name),
        v.items.as_ref(),
        v.default_mode,
        v.optional == Some(true),
        "configmap references non-existent config key",
    )
}

pub fn secret(v: &SecretVolumeSource, objects: &Objects) -> Result<Payload, String> {
    let name = v.secret_name.clone().unwrap_or_default();
    keyed(
        objects.secret(&name),
        v.items.as_ref(),
        v.default_mode,
        v.optional == Some(true),
        "secret references non-existent secret key",
    )
}

/// Labels and annotations the way the kubelet writes them: `key="value"` lines, sorted.
fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}=\"{}\"", v.escape_debug()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn downward_items(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
) -> Result<Payload, String> {
    let default = default_mode.unwrap_or(DEFAULT_MODE);
    let empty = Objects::default();
    let d = Downward {
        pod,
        pod_ip: None,
        host_ip: std::net::IpAddr::from([0, 0, 0, 0]),
        objects: &empty,
        services: &[],
    };
    let mut out = Payload::new();
    for it in items {
        validate_path(&it.path)?;
        let value = if let Some(f) = &it.field_ref {
            match f.field_path.as_str() {
                "metadata.labels" => format_map(pod.metadata.labels.as_ref()),
                "metadata.annotations" => format_map(pod.metadata.annotations.as_ref()),
                p @ ("metadata.name" | "metadata.namespace" | "metadata.uid") => {
                    env::field_ref(p, &d)?
                }
                p if p.starts_with("metadata.labels[")
                    || p.starts_with("metadata.annotations[") =>
                {
                    env::field_ref(p, &d)?
                }
                p => return Err(format!("downwardAPI: unsupported fieldPath {p:?}")),
            }
        } else if let Some(r) = &it.resource_field_ref {
            let cname = r.container_name.clone().unwrap_or_default();
            let spec = pod.spec.as_ref();
            let c = spec
                .into_iter()
                .flat_map(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                })
                .find(|c| c.name == cname)
                .ok_or_else(|| format!("downwardAPI: container {cname:?} not found in the pod"))?;
            env::resource_value(c, &r.resource, r.divisor.as_ref().map(|q| q.0.as_str()))?
        } else {
            return Err(format!(
                "downwardAPI item {:?}: no fieldRef or resourceFieldRef",
                it.path
            ));
        };
        out.insert(
            it.path.clone(),
            FileProjection {
                data: value.into_bytes(),
                mode: mode(it.mode, default)?,
            },
        );
    }
    Ok(out)
}

pub fn downward_api(
    pod: &Pod,
    items: Option<&Vec<DownwardAPIVolumeFile>>,
    default_mode: Option<i32>,
) -> Result<Payload, String> {
    downward_items(
        pod,
        items.map(Vec::as_slice).unwrap_or_default(),
        default_mode,
    )
}

/// A projected volume: its sources merged; a later source's path replaces an earlier one.
/// serviceAccountToken sources take their token from `objects.tokens`; clusterTrustBundle sources are not
/// supported yet and are skipped.
pub fn projected(
    pod: &Pod,
    name: &str,
    v: &ProjectedVolumeSource,
    objects: &Objects,
) -> Result<Payload, String> {
    let default = v.default_mode.or(Some(DEFAULT_MODE));
    let mut out = Payload::new();
    for s in v.sources.iter().flatten() {
        let part = if let Some(c) = &s.config_map {
            keyed(
                objects.config_map(&c.name),
                c.items.as_ref(),
                default,
                c.optional == Some(true),
                "configmap references non-existent config key",
            )?
        } else if let Some(c) = &s.secret {
            keyed(
                objects.secret(&c.name),
                c.items.as_ref(),
                default,
                c.optional == Some(true),
                "secret references non-existent secret key",
            )?
        } else if let Some(d) = &s.downward_api {
            downward_items(pod, d.items.as_deref().unwrap_or_default(), default)?
        } else if let Some(t) = &s.service_account_token {
            validate_path(&t.path)?;
            let want = (
                t.audience.clone().filter(|a| !a.is_empty()),
                t.expiration_seconds
                    .unwrap_or(super::tokens::DEFAULT_EXPIRATION),
            );
            let Some(token) = objects.tokens.get(&want) else {
                return Err(format!("no service account token for {:?}", t.path));
            };
            let mut part = Payload::new();
            part.insert(
                t.path.clone(),
                FileProjection {
                    data: token.as_bytes().to_vec(),
                    mode: mode(None, default.unwrap_or(DEFAULT_MODE))?,
                },
            );
            part
        } else {
            tracing::warn!(volume = %name, "projected source of this kind is not supported yet; skipped");
            continue;
        };
        out.extend(part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ConfigMap, ConfigMapProjection, DownwardAPIProjection, ObjectFieldSelector, PodSpec,
        Secret, SecretProjection, ServiceAccountTokenProjection, VolumeProjection,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn objects() -> Objects {
        let mut o = Objects {
            namespace: "default".into(),
            ..Default::default()
        };
        o.config_maps.insert(
            "app".into(),
            Some(ConfigMap {
                data: Some(BTreeMap::from([
                    ("a.conf".to_string(), "alpha".to_string()),
                    ("b.conf".to_string(), "beta".to_string()),
                ])),
                binary_data: Some(BTreeMap::from([(
                    "bin".to_string(),
                    ByteString(vec![0, 1, 2]),
                )])),
                ..Default::default()
            }),
        );
        o.secrets.insert(
            "tls".into(),
            Some(Secret {
                data: Some(BTreeMap::from([(
                    "key".to_string(),
                    ByteString(b"k3y".to_vec()),
                )])),
                ..Default::default()
            }),
        );
        o.config_maps.insert("gone".into(), None);
        o
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
            ..Default::default()
        }
    }

    #[test]
    fn config_map_keys_items_modes() {
        let o = objects();
        let all = config_map(
            &ConfigMapVolumeSource {
                name: "app".into(),
                ..Default::default()
            },
            &o,
        )
        .expect("all keys");
        assert_eq!(all.len(), 3);
        assert_eq!(all["a.conf"].data, b"alpha");
        assert_eq!(all["a.conf"].mode, 0o644);
        assert_eq!(all["bin"].data, vec![0, 1, 2]);

        let some = config_map(
            &ConfigMapVolumeSource {
                name: "app".into(),
                default_mode: Some(0o600),
                items: Some(vec![
                    item("a.conf", "conf/a", None),
                    item("b.conf", "b", Some(0o400)),
                ]),
                ..Default::default()
            },
            &o,
        )
        .expect("items");
        assert_eq!(some.keys().collect::<Vec<_>>(), ["b", "conf/a"]);
        assert_eq!(some["conf/a"].mode, 0o600);
        assert_eq!(some["b"].mode, 0o400);

        let missing_key = ConfigMapVolumeSource {
            name: "app".into(),
            items: Some(vec![item("nope", "x", None)]),
            ..Default::default()
        };
        assert_eq!(
            config_map(&missing_key, &o).err().as_deref(),
            Some("configmap references non-existent config key: nope")
        );
        let missing = ConfigMapVolumeSource {
            name: "gone".into(),
            ..Default::default()
        };
        assert_eq!(
            config_map(&missing, &o).err().as_deref(),
            Some("configmap \"gone\" not found")
        );
        let optional = ConfigMapVolumeSource {
            optional: Some(true),
            ..missing
        };
        assert_eq!(config_map(&optional, &o), Ok(Payload::new()));
        let escaping = ConfigMapVolumeSource {
            name: "app".into(),
            items: Some(vec![item("a.conf", "../../etc/passwd", None)]),
            ..Default::default()
        };
        assert!(config_map(&escaping, &o).is_err());
        let bad_mode = ConfigMapVolumeSource {
            name: "app".into(),
            default_mode: Some(0o7777),
            ..Default::default()
        };
        assert!(config_map(&bad_mode, &o).is_err());
    }

    #[test]
    fn secrets_and_projected() {
        let o = objects();
        let s = secret(
            &SecretVolumeSource {
                secret_name: Some("tls".into()),
                ..Default::default()
            },
            &o,
        )
        .expect("secret");
        assert_eq!(s["key"].data, b"k3y");
        assert_eq!(
            secret(
                &SecretVolumeSource {
                    secret_name: Some("nope".into()),
                    ..Default::default()
                },
                &o
            )
            .err()
            .as_deref(),
            Some("secret \"nope\" not found")
        );
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                labels: Some(BTreeMap::from([
                    ("app".to_string(), "web".to_string()),
                    ("tier".to_string(), "front\"end".to_string()),
                ])),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            ..Default::default()
        };
        let field = |path: &str, f: &str| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector {
                field_path: f.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = ProjectedVolumeSource {
            default_mode: Some(0o440),
            sources: Some(vec![
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "app".into(),
                        items: Some(vec![item("a.conf", "a", None)]),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    secret: Some(SecretProjection {
                        name: "tls".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![
                            field("name", "metadata.name"),
                            field("labels", "metadata.labels"),
                        ]),
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let err = projected(&pod, "all", &v, &o).expect_err("no token fetched");
        assert!(err.contains("no service account token"), "{err}");
        let mut o = o;
        o.tokens.insert((None, 3600), "jwt-for-the-pod".into());
        let p = projected(&pod, "all", &v, &o).expect("projected");
        assert_eq!(
            p.keys().collect::<Vec<_>>(),
            ["a", "key", "labels", "name", "token"]
        );
        assert_eq!(p["token"].data, b"jwt-for-the-pod");
        assert_eq!(p["token"].mode, 0o440);
        assert_eq!(p["a"].mode, 0o440);
        assert_eq!(p["name"].data, b"web");
        assert_eq!(
            String::from_utf8_lossy(&p["labels"].data),
            "app=\"web\"\ntier=\"front\\\"end\""
        );
        let bad = downward_api(&pod, Some(&vec![field("x", "spec.nodeName")]), None);
        assert!(bad.is_err());
    }
}
