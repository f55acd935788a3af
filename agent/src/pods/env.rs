//! What a container process gets: argv (Kubernetes' command/args over the image's entrypoint/cmd),
//! environment (image env, then the container's, with the downward API), and user.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use oci_spec::image::Config as ImageConfig;

use crate::volumes::objects::Objects;

/// Facts the downward API can expose that are not in the Pod object itself, and the configMaps and
/// secrets the container's env refers to.
pub struct Downward<'a> {
    pub pod: &'a Pod,
    pub pod_ip: Option<IpAddr>,
    pub host_ip: IpAddr,
    pub objects: &'a Objects,
    /// The service variables (`MY_SVC_SERVICE_HOST`, …; see [`crate::proxy::links`]).
    pub services: &'a [(String, String)],
}

/// The node's allocatable CPU (millicores) and memory (bytes): what a limit that is not set means.
fn node_allocatable(resource: &str) -> i128 {
    if resource.ends_with("cpu") {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        return n as i128 * 1000;
    }
    if resource.ends_with("memory") {
        let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib = info
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<i128>().ok())
            .unwrap_or(0);
        return kib * 1024;
    }
    0
}

/// `resourceFieldRef`: `limits.cpu`, `requests.memory`, … divided by `divisor` (default 1) and rounded up,
/// as the kubelet does; an unset limit is the node's allocatable amount.
pub fn resource_value(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
) -> Result<String, String> {
    let parse = |q: &str| crate::runtime::quantity::parse_milli(q);
    let divisor = parse(divisor.filter(|d| !d.is_empty()).unwrap_or("1"))
        .map_err(|e| format!("resourceFieldRef {resource}: divisor: {e}"))?;
    if divisor <= 0 {
        return Err(format!(
            "resourceFieldRef {resource}: divisor must be positive"
        ));
    }
    let res = c.resources.as_ref();
    let (map, name) = match resource.split_once('.') {
        Some(("limits", n)) => (res.and_then(|r| r.limits.as_ref()), n),
        Some(("requests", n)) => (res.and_then(|r| r.requests.as_ref()), n),
        None if resource == "cpu" || resource == "memory" || resource == "ephemeral-storage" => {
            (res.and_then(|r| r.limits.as_ref()), resource)
        }
        _ => {
            return Err(format!(
                "unsupported resourceFieldRef resource {resource:?}"
            ));
        }
    };
    if !matches!(name, "cpu" | "memory" | "ephemeral-storage") {
        return Err(format!(
            "unsupported resourceFieldRef resource {resource:?}"
        ));
    }
    let value = match map.and_then(|m| m.get(name)) {
        Some(q) => parse(&q.0).map_err(|e| format!("resourceFieldRef {resource}: {e}"))?,
        None if resource.starts_with("requests.") => 0,
        None => node_allocatable(name),
    };
    // Ceiling division (values are never negative for valid pods).
    let v = if value <= 0 {
        value / divisor
    } else {
        (value + divisor - 1) / divisor
    };
    Ok(v.to_string())
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

pub fn field_ref(path: &str, d: &Downward<'_>) -> Result<String, String> {
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

/// A key of a configMap or secret; an optional reference to a missing object or key sets nothing.
fn key_ref(
    data: Result<BTreeMap<String, Vec<u8>>, String>,
    key: &str,
    optional: Option<bool>,
    missing_key: impl FnOnce() -> String,
) -> Result<Option<String>, String> {
    let optional = optional == Some(true);
    let data = match data {
        Ok(d) => d,
        Err(_) if optional => return Ok(None),
        Err(e) => return Err(e),
    };
    match data.get(key) {
        Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
        None if optional => Ok(None),
        None => Err(missing_key()),
    }
}

/// A name the kubelet accepts from envFrom (C identifiers plus `.` and `-`, no `=`).
fn valid_env_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// `envFrom`: every key of each configMap/secret, with its prefix; invalid names are skipped.
fn env_from(
    container: &Container,
    d: &Downward<'_>,
    env: &mut Vec<(String, String)>,
) -> Result<(), String> {
    for src in container.env_from.iter().flatten() {
        let prefix = src.prefix.clone().unwrap_or_default();
        let (data, optional) = if let Some(r) = &src.config_map_ref {
            (d.objects.config_map_env(&r.name), r.optional == Some(true))
        } else if let Some(r) = &src.secret_ref {
            (d.objects.secret(&r.name), r.optional == Some(true))
        } else {
            continue;
        };
        let data = match data {
            Ok(d) => d,
            Err(_) if optional => continue,
            Err(e) => return Err(e),
        };
        for (k, v) in data {
            let name = format!("{prefix}{k}");
            if !valid_env_name(&name) {
                tracing::debug!(name = %name, "envFrom: skipping invalid environment variable name");
                continue;
            }
            set(env, name, String::from_utf8_lossy(&v).into_owned());
        }
    }
    Ok(())
}

fn resolve_one(
    var: &EnvVar,
    container: &Container,
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
    if let Some(r) = &from.resource_field_ref {
        return resource_value(
            container,
            &r.resource,
            r.divisor.as_ref().map(|q| q.0.as_str()),
        )
        .map(Some);
    }
    let ns = &d.objects.namespace;
    if let Some(r) = &from.config_map_key_ref {
        return key_ref(
            d.objects.config_map_env(&r.name),
            &r.key,
            r.optional,
            || format!("couldn't find key {} in ConfigMap {ns}/{}", r.key, r.name),
        );
    }
    if let Some(r) = &from.secret_key_ref {
        return key_ref(d.objects.secret(&r.name), &r.key, r.optional, || {
            format!("couldn't find key {} in Secret {ns}/{}", r.key, r.name)
        });
    }
    Err(format!(
        "env {}: this valueFrom source is not supported yet",
        var.name
    ))
}

/// Image env first, then the service variables, then the container's `envFrom` and `env` (later definitions
/// replace earlier ones, order kept; `$(VAR)` in `env` may name any of them).
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
    for (k, v) in d.services {
        set(&mut env, k.clone(), v.clone());
    }
    env_from(container, d, &mut env)?;
    for var in container.env.iter().flatten() {
        if let Some(v) = resolve_one(var, container, d, &env)? {
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
        return Err(if run_as_user.is_some() {
            "container's runAsUser breaks non-root policy".to_string()
        } else {
            "container has runAsNonRoot and image will run as root".to_string()
        });
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

/// The kubelet's check before resolving the image's user: with runAsNonRoot and no runAsUser, a user
/// name cannot be verified to be non-root (its uid comes from a file the image controls).
pub fn verify_non_root_user(
    pod: &Pod,
    container: &Container,
    image_user: &str,
) -> Result<(), String> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let c_sc = container.security_context.as_ref();
    let non_root = c_sc
        .and_then(|s| s.run_as_non_root)
        .or(pod_sc.and_then(|s| s.run_as_non_root));
    let run_as_user = c_sc
        .and_then(|s| s.run_as_user)
        .or(pod_sc.and_then(|s| s.run_as_user));
    let user = image_user.split(':').next().unwrap_or_default();
    if non_root == Some(true)
        && run_as_user.is_none()
        && !user.is_empty()
        && user.parse::<u32>().is_err()
    {
        return Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root"
        ));
    }
    Ok(())
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
#[path = "env_tests.rs"]
mod tests;
