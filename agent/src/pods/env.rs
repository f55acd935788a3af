//! What a container process gets: argv (Kubernetes' command/args over the image's entrypoint/cmd),
//! environment (image env, then the container's, with the downward API), and user.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use oci_spec::image::Config as ImageConfig;

/// Facts the downward API can expose that are not in the Pod object itself.
pub struct Downward<'a> {
    pub pod: &'a Pod,
    pub pod_ip: Option<IpAddr>,
    pub host_ip: IpAddr,
}

/// Kubernetes' merge rule: `command` replaces the entrypoint (and drops the image cmd), `args` replaces cmd.
pub fn argv(
    container: &Container,
    image: Option<&ImageConfig>,
    env: &[(String, String)],
) -> Vec<String> {
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    let entrypoint = image
        .and_then(|c| c.entrypoint().clone())
        .unwrap_or_default();
    let cmd = image.and_then(|c| c.cmd().clone()).unwrap_or_default();
    let lookup: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand_all = |v: Vec<String>| {
        v.into_iter()
            .map(|s| expand(&s, &lookup))
            .collect::<Vec<_>>()
    };
    if !command.is_empty() {
        let mut out = expand_all(command);
        out.extend(expand_all(args));
        out
    } else if !args.is_empty() {
        let mut out = entrypoint;
        out.extend(expand_all(args));
        out
    } else {
        let mut out = entrypoint;
        out.extend(cmd);
        out
    }
}

/// `$(VAR)` expansion as the kubelet does it: defined names are replaced, `$$` escapes, the rest stays.
pub fn expand(input: &str, env: &BTreeMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            if bytes[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if bytes[i + 1] == b'('
                && let Some(end) = input[i + 2..].find(')')
            {
                let name = &input[i + 2..i + 2 + end];
                if let Some(v) = env.get(name) {
                    out.push_str(v);
                    i += 2 + end + 1;
                    continue;
                }
            }
        }
        let ch = input[i..].chars().next().unwrap_or('\u{FFFD}');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

fn split_kv(s: &str) -> (String, String) {
    match s.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (s.to_string(), String::new()),
    }
}

fn set(env: &mut Vec<(String, String)>, k: String, v: String) {
    match env.iter_mut().find(|(name, _)| *name == k) {
        Some(slot) => slot.1 = v,
        None => env.push((k, v)),
    }
}

fn field_ref(path: &str, d: &Downward<'_>) -> Result<String, String> {
    let meta = &d.pod.metadata;
    let spec = d.pod.spec.as_ref();
    let pod_ip = d.pod_ip.map(|ip| ip.to_string()).unwrap_or_default();
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => pod_ip,
        "status.hostIP" | "status.hostIPs" => d.host_ip.to_string(),
        p => {
            let pick = |map: Option<&BTreeMap<String, String>>, prefix: &str| -> Option<String> {
                let key = p.strip_prefix(prefix)?.strip_suffix("']")?;
                Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
            };
            if let Some(v) = pick(meta.labels.as_ref(), "metadata.labels['") {
                v
            } else if let Some(v) = pick(meta.annotations.as_ref(), "metadata.annotations['") {
                v
            } else {
                return Err(format!("unsupported fieldRef fieldPath {p:?}"));
            }
        }
    })
}

fn resolve_one(
    var: &EnvVar,
    d: &Downward<'_>,
    env: &[(String, String)],
) -> Result<Option<String>, String> {
    if let Some(v) = &var.value {
        let lookup: BTreeMap<&str, &str> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        return Ok(Some(expand(v, &lookup)));
    }
    let Some(from) = &var.value_from else {
        return Ok(Some(String::new()));
    };
    if let Some(f) = &from.field_ref {
        return field_ref(&f.field_path, d).map(Some);
    }
    if let Some(r) = &from.config_map_key_ref {
        if r.optional == Some(true) {
            return Ok(None);
        }
        return Err(format!(
            "env {}: configMapKeyRef is not supported yet",
            var.name
        ));
    }
    if let Some(r) = &from.secret_key_ref {
        if r.optional == Some(true) {
            return Ok(None);
        }
        return Err(format!(
            "env {}: secretKeyRef is not supported yet",
            var.name
        ));
    }
    Err(format!(
        "env {}: this valueFrom source is not supported yet",
        var.name
    ))
}

/// Image env first, then the container's (later definitions replace earlier ones, order kept).
pub fn environment(
    container: &Container,
    image: Option<&ImageConfig>,
    d: &Downward<'_>,
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    for kv in image.and_then(|c| c.env().clone()).unwrap_or_default() {
        let (k, v) = split_kv(&kv);
        set(&mut env, k, v);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(
            0,
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
        );
    }
    if container.env_from.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err("envFrom is not supported yet".to_string());
    }
    for var in container.env.iter().flatten() {
        if let Some(v) = resolve_one(var, d, &env)? {
            set(&mut env, var.name.clone(), v);
        }
    }
    Ok(env)
}

/// uid, gid and supplementary groups: the image's `User` (numeric, or `root`), then securityContext overrides.
pub fn user(
    pod: &Pod,
    container: &Container,
    image_user: &str,
) -> Result<(u32, u32, Vec<u32>), String> {
    let (mut uid, mut gid) = parse_user(image_user)?;
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let c_sc = container.security_context.as_ref();
    let run_as_user = c_sc
        .and_then(|s| s.run_as_user)
        .or(pod_sc.and_then(|s| s.run_as_user));
    let run_as_group = c_sc
        .and_then(|s| s.run_as_group)
        .or(pod_sc.and_then(|s| s.run_as_group));
    if let Some(u) = run_as_user {
        uid = u32::try_from(u).map_err(|_| format!("runAsUser {u} out of range"))?;
        if run_as_group.is_none() && image_user.is_empty() {
            gid = 0;
        }
    }
    if let Some(g) = run_as_group {
        gid = u32::try_from(g).map_err(|_| format!("runAsGroup {g} out of range"))?;
    }
    let run_as_non_root = c_sc
        .and_then(|s| s.run_as_non_root)
        .or(pod_sc.and_then(|s| s.run_as_non_root));
    if run_as_non_root == Some(true) && uid == 0 {
        return Err("container has runAsNonRoot and image will run as root".to_string());
    }
    let mut groups = Vec::new();
    for g in pod_sc
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default()
    {
        groups.push(u32::try_from(g).map_err(|_| format!("supplemental group {g} out of range"))?);
    }
    if let Some(g) = pod_sc.and_then(|s| s.fs_group) {
        groups.push(u32::try_from(g).map_err(|_| format!("fsGroup {g} out of range"))?);
    }
    Ok((uid, gid, groups))
}

/// `uid`, `uid:gid`, `root`; names other than root need the image's /etc/passwd (not supported yet).
pub fn parse_user(s: &str) -> Result<(u32, u32), String> {
    if s.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let num = |x: &str, what: &str| -> Result<u32, String> {
        if x == "root" {
            return Ok(0);
        }
        x.parse::<u32>().map_err(|_| {
            format!("image {what} {x:?} is not numeric (user names are not supported yet)")
        })
    };
    let uid = num(u, "user")?;
    let gid = match g {
        Some(g) => num(g, "group")?,
        None => {
            if uid == 0 {
                0
            } else {
                uid
            }
        }
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVarSource, ObjectFieldSelector, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use oci_spec::image::ConfigBuilder;

    fn image(entry: &[&str], cmd: &[&str]) -> ImageConfig {
        ConfigBuilder::default()
            .entrypoint(entry.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .cmd(cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .env(vec!["PATH=/img/bin".to_string(), "A=image".to_string()])
            .build()
            .expect("config")
    }

    fn c(command: &[&str], args: &[&str]) -> Container {
        let v = |x: &[&str]| {
            if x.is_empty() {
                None
            } else {
                Some(x.iter().map(|s| s.to_string()).collect())
            }
        };
        Container {
            name: "c".into(),
            command: v(command),
            args: v(args),
            ..Default::default()
        }
    }

    #[test]
    fn command_args_merge() {
        let img = image(&["/docker-entrypoint.sh"], &["nginx", "-g", "daemon off;"]);
        assert_eq!(
            argv(&c(&[], &[]), Some(&img), &[]),
            ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
        );
        assert_eq!(argv(&c(&["sh"], &[]), Some(&img), &[]), ["sh"]);
        assert_eq!(
            argv(&c(&[], &["x"]), Some(&img), &[]),
            ["/docker-entrypoint.sh", "x"]
        );
        assert_eq!(
            argv(&c(&["sh"], &["-c", "echo"]), Some(&img), &[]),
            ["sh", "-c", "echo"]
        );
        let env = vec![("NAME".to_string(), "world".to_string())];
        assert_eq!(
            argv(
                &c(&["echo", "$(NAME)", "$$(NAME)", "$(NOPE)"], &[]),
                None,
                &env
            ),
            ["echo", "world", "$(NAME)", "$(NOPE)"]
        );
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("u-1".into()),
                labels: Some(BTreeMap::from([("app".to_string(), "x".to_string())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn from_field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn env_resolution() {
        let p = pod();
        let d = Downward {
            pod: &p,
            pod_ip: Some("10.244.0.5".parse().expect("ip")),
            host_ip: "10.0.0.1".parse().expect("ip"),
        };
        let mut ct = c(&[], &[]);
        ct.env = Some(vec![
            EnvVar {
                name: "A".into(),
                value: Some("container".into()),
                ..Default::default()
            },
            EnvVar {
                name: "B".into(),
                value: Some("$(A)-b".into()),
                ..Default::default()
            },
            from_field("POD", "metadata.name"),
            from_field("NS", "metadata.namespace"),
            from_field("UID", "metadata.uid"),
            from_field("NODE", "spec.nodeName"),
            from_field("IP", "status.podIP"),
            from_field("HOST", "status.hostIP"),
            from_field("APP", "metadata.labels['app']"),
        ]);
        let img = image(&[], &["sh"]);
        let env = environment(&ct, Some(&img), &d).expect("env");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(env[0], ("PATH".to_string(), "/img/bin".to_string()));
        assert_eq!(get("A"), Some("container"));
        assert_eq!(get("B"), Some("container-b"));
        assert_eq!(get("POD"), Some("web"));
        assert_eq!(get("NS"), Some("prod"));
        assert_eq!(get("UID"), Some("u-1"));
        assert_eq!(get("NODE"), Some("n1"));
        assert_eq!(get("IP"), Some("10.244.0.5"));
        assert_eq!(get("HOST"), Some("10.0.0.1"));
        assert_eq!(get("APP"), Some("x"));
        ct.env = Some(vec![from_field("X", "spec.bogus")]);
        assert!(environment(&ct, None, &d).is_err());
        let env = environment(&c(&[], &[]), None, &d).expect("env");
        assert_eq!(env[0].0, "PATH");
    }

    #[test]
    fn users() {
        assert_eq!(parse_user(""), Ok((0, 0)));
        assert_eq!(parse_user("101"), Ok((101, 101)));
        assert_eq!(parse_user("101:7"), Ok((101, 7)));
        assert_eq!(parse_user("root:root"), Ok((0, 0)));
        assert!(parse_user("nginx").is_err());
        let p = pod();
        let mut ct = c(&[], &[]);
        ct.security_context = Some(k8s_openapi::api::core::v1::SecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            ..Default::default()
        });
        assert_eq!(user(&p, &ct, ""), Ok((1000, 3000, vec![])));
        assert_eq!(user(&p, &c(&[], &[]), "101:101"), Ok((101, 101, vec![])));
    }
}
