//! Pod defaults, validation, update rules and the kubectl STATUS column.

pub mod ephemeral;
pub mod volumes;

use std::collections::HashSet;

use serde_json::{Value, json};

use super::validation::{DNS1123_LABEL_MSG, is_dns1123_label};
use crate::status::FieldError;

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), v);
    }
}

/// The defaults every container gets (init, app and ephemeral).
pub fn default_container(c: &mut Value) {
    default_template_container(c);
    // Requests default to limits.
    if let Some(limits) = c
        .pointer("/resources/limits")
        .and_then(Value::as_object)
        .cloned()
    {
        let res = &mut c["resources"];
        set_default(res, "requests", json!({}));
        if let Some(req) = res.get_mut("requests").and_then(Value::as_object_mut) {
            for (k, v) in limits {
                req.entry(k).or_insert(v);
            }
        }
    }
}

/// The defaults of a container in a pod template (kube's `SetDefaults_Container`, `SetDefaults_ContainerPort`):
/// those of [`default_container`] without the pod-only requests-from-limits.
pub fn default_template_container(c: &mut Value) {
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let policy = if image_tag_is_latest(&image) {
        "Always"
    } else {
        "IfNotPresent"
    };
    set_default(c, "imagePullPolicy", json!(policy));
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_default(p, "protocol", json!("TCP"));
        }
    }
}

/// `Always` for `:latest` or no tag (and no digest), else `IfNotPresent`.
pub fn image_tag_is_latest(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

fn qos_class(spec: &Value) -> &'static str {
    let mut all = Vec::new();
    for list in ["initContainers", "containers"] {
        if let Some(cs) = spec.get(list).and_then(Value::as_array) {
            all.extend(cs.iter());
        }
    }
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        let has = |m: Option<&serde_json::Map<String, Value>>, k: &str| {
            m.is_some_and(|m| m.contains_key(k))
        };
        if has(req, "cpu") || has(req, "memory") || has(lim, "cpu") || has(lim, "memory") {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(r));
            let q = req.and_then(|m| m.get(r));
            if l.is_none() || (q.is_some() && q != l) {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Pod defaults (SetDefaults_Pod and the admission plugins a stock cluster runs).
pub fn apply_defaults(pod: &mut Value, create: bool) {
    if pod.get("spec").is_none_or(|s| !s.is_object()) {
        pod["spec"] = json!({});
    }
    let spec = &mut pod["spec"];
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "enableServiceLinks", json!(true));
    set_default(spec, "securityContext", json!({}));
    // `priority` and `preemptionPolicy` are the Priority admission's (`super::priorityclass::admission`).
    volumes::apply_defaults(spec);
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                default_container(c);
            }
        }
    }
    // DefaultTolerationSeconds admission.
    let mut tol = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        if !tol
            .iter()
            .any(|t| t.get("key").and_then(Value::as_str) == Some(key))
        {
            tol.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    spec["tolerations"] = Value::Array(tol);
    if create {
        let qos = qos_class(&pod["spec"]);
        pod["status"] = json!({"phase": "Pending", "qosClass": qos});
    }
}

fn validate_ports(c: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(ports) = c.get("ports").and_then(Value::as_array) else {
        return;
    };
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        match p.get("containerPort").and_then(Value::as_i64) {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => errs.push(FieldError::invalid(
                format!("{pp}.containerPort"),
                &json!(n),
                "must be between 1 and 65535, inclusive",
            )),
            None => errs.push(FieldError::required(format!("{pp}.containerPort"), "")),
        }
        if let Some(n) = p.get("hostPort").and_then(Value::as_i64)
            && !(0..=65535).contains(&n)
        {
            errs.push(FieldError::invalid(
                format!("{pp}.hostPort"),
                &json!(n),
                "must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(proto) = p.get("protocol").and_then(Value::as_str)
            && !matches!(proto, "TCP" | "UDP" | "SCTP")
        {
            errs.push(FieldError::not_supported(
                format!("{pp}.protocol"),
                &json!(proto),
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
}

/// Pod validation (a subset of ValidatePodCreate).
pub fn validate(pod: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = pod.get("spec").cloned().unwrap_or(json!({}));
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (volumes, volume_errs) = volumes::validate(&spec, pod_name);
    errs.extend(volume_errs);
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if containers.is_empty() {
        errs.push(FieldError::required("spec.containers", ""));
    }
    let mut names = HashSet::new();
    let init = spec
        .get("initContainers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (list, cs) in [("initContainers", &init), ("containers", &containers)] {
        for (i, c) in cs.iter().enumerate() {
            let path = format!("spec.{list}[{i}]");
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            validate_container_name(&path, name, &mut names, &mut errs);
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(|s| s.trim().is_empty())
            {
                errs.push(FieldError::required(format!("{path}.image"), ""));
            }
            if let Some(p) = c.get("imagePullPolicy").and_then(Value::as_str)
                && !matches!(p, "Always" | "IfNotPresent" | "Never")
            {
                errs.push(FieldError::not_supported(
                    format!("{path}.imagePullPolicy"),
                    &json!(p),
                    &["Always", "IfNotPresent", "Never"],
                ));
            }
            validate_ports(c, &path, &mut errs);
            if let Some(ms) = c.get("volumeMounts").and_then(Value::as_array) {
                for (j, m) in ms.iter().enumerate() {
                    let mp = format!("{path}.volumeMounts[{j}]");
                    let vn = m.get("name").and_then(Value::as_str).unwrap_or("");
                    if vn.is_empty() {
                        errs.push(FieldError::required(format!("{mp}.name"), ""));
                    } else if !volumes.contains(vn) {
                        errs.push(FieldError::not_found(format!("{mp}.name"), &json!(vn)));
                    }
                    if m.get("mountPath")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        errs.push(FieldError::required(format!("{mp}.mountPath"), ""));
                    }
                }
            }
        }
    }
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str)
        && !matches!(rp, "Always" | "OnFailure" | "Never")
    {
        errs.push(FieldError::not_supported(
            "spec.restartPolicy",
            &json!(rp),
            &["Always", "OnFailure", "Never"],
        ));
    }
    if let Some(dp) = spec.get("dnsPolicy").and_then(Value::as_str)
        && !matches!(
            dp,
            "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None"
        )
    {
        errs.push(FieldError::not_supported(
            "spec.dnsPolicy",
            &json!(dp),
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        ));
    }
    if let Some(g) = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        && g < 0
    {
        errs.push(FieldError::invalid(
            "spec.terminationGracePeriodSeconds",
            &json!(g),
            "must be greater than or equal to 0",
        ));
    }
    errs
}

/// A container's name (at `<path>.name`): required, a DNS label, unique among the names in `taken` (where it
/// is added).
fn validate_container_name(
    path: &str,
    name: &str,
    taken: &mut HashSet<String>,
    errs: &mut Vec<FieldError>,
) {
    if name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !is_dns1123_label(name) {
        errs.push(FieldError::invalid(
            format!("{path}.name"),
            &json!(name),
            DNS1123_LABEL_MSG,
        ));
    } else if !taken.insert(name.to_string()) {
        errs.push(FieldError::duplicate(format!("{path}.name"), &json!(name)));
    }
}

/// What only a new pod must satisfy: ephemeral containers come later, through their subresource.
pub fn validate_new(pod: &Value) -> Vec<FieldError> {
    if pod
        .pointer("/spec/ephemeralContainers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return vec![FieldError::forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        )];
    }
    Vec::new()
}

const UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn mutable_stripped(spec: &Value) -> Value {
    let mut s = spec.clone();
    // As kube decodes the stored pod with today's defaults, a pod stored before a volume default existed
    // compares as if it had it.
    volumes::apply_defaults(&mut s);
    if let Some(m) = s.as_object_mut() {
        m.remove("activeDeadlineSeconds");
        m.remove("tolerations");
        for list in ["initContainers", "containers"] {
            if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(cm) = c.as_object_mut() {
                        cm.remove("image");
                    }
                }
            }
        }
    }
    s
}

/// Pod spec immutability on update.
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let os = old.get("spec").cloned().unwrap_or(json!({}));
    let ns = new.get("spec").cloned().unwrap_or(json!({}));
    if mutable_stripped(&os) != mutable_stripped(&ns) {
        return vec![FieldError::forbidden("spec", UPDATE_FORBIDDEN)];
    }
    Vec::new()
}

/// Fields an ephemeral container may not set (k8s `validateEphemeralContainers`).
const EPHEMERAL_FORBIDDEN: [&str; 6] = [
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "resources",
];

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

/// An update of `pods/ephemeralcontainers`: only `spec.ephemeralContainers` may differ, existing entries
/// stay as they are, new ones are valid debugging containers with names unique in the pod.
pub fn validate_ephemeral_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let strip = |pod: &Value| {
        let mut s = pod.get("spec").cloned().unwrap_or(json!({}));
        if let Some(m) = s.as_object_mut() {
            m.remove("ephemeralContainers");
        }
        s
    };
    if strip(old) != strip(new) {
        errs.push(FieldError::forbidden(
            "spec",
            "only spec.ephemeralContainers may be changed through pods/ephemeralcontainers",
        ));
        return errs;
    }
    let before = arr(old, "/spec/ephemeralContainers");
    let after = arr(new, "/spec/ephemeralContainers");
    for b in &before {
        let name = s(b, "/name");
        match after.iter().find(|a| s(a, "/name") == name) {
            None => errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                &format!("existing ephemeral containers \"{name}\" may not be removed"),
            )),
            Some(a) if a != b => errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                &format!("existing ephemeral containers \"{name}\" may not be changed"),
            )),
            Some(_) => {}
        }
    }
    let regular: Vec<&str> = arr(new, "/spec/initContainers")
        .into_iter()
        .chain(arr(new, "/spec/containers"))
        .map(|c| s(c, "/name"))
        .collect();
    let mut taken: HashSet<String> = regular.iter().map(|n| n.to_string()).collect();
    let volumes: HashSet<&str> = arr(new, "/spec/volumes")
        .into_iter()
        .map(|v| s(v, "/name"))
        .collect();
    for (i, c) in after.iter().enumerate() {
        let path = format!("spec.ephemeralContainers[{i}]");
        validate_container_name(&path, s(c, "/name"), &mut taken, &mut errs);
        if s(c, "/image").trim().is_empty() {
            errs.push(FieldError::required(format!("{path}.image"), ""));
        }
        for f in EPHEMERAL_FORBIDDEN {
            // As k8s' allow-list: a field counts as set when it is not its zero value (`resources: {}` is fine).
            if c.get(f).is_some_and(|v| !is_zero(v)) {
                errs.push(FieldError::forbidden(
                    format!("{path}.{f}"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        let target = s(c, "/targetContainerName");
        if !target.is_empty() && !regular.contains(&target) {
            errs.push(FieldError::not_found(
                format!("{path}.targetContainerName"),
                &json!(target),
            ));
        }
        for (j, m) in arr(c, "/volumeMounts").iter().enumerate() {
            let vn = s(m, "/name");
            if !volumes.contains(vn) {
                errs.push(FieldError::not_found(
                    format!("{path}.volumeMounts[{j}].name"),
                    &json!(vn),
                ));
            }
            if !s(m, "/subPath").is_empty() {
                errs.push(FieldError::forbidden(
                    format!("{path}.volumeMounts[{j}].subPath"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
    }
    errs
}

fn arr<'a>(v: &'a Value, p: &str) -> Vec<&'a Value> {
    v.pointer(p)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn condition_true(pod: &Value, ty: &str) -> bool {
    arr(pod, "/status/conditions")
        .iter()
        .any(|c| s(c, "/type") == ty && s(c, "/status") == "True")
}

/// READY, STATUS and RESTARTS as kubectl's printPod computes them.
pub fn status_columns(pod: &Value) -> (String, String, i64) {
    let mut restarts = 0i64;
    let mut ready = 0;
    let containers = arr(pod, "/spec/containers");
    let init_specs = arr(pod, "/spec/initContainers");
    let mut total = containers.len();
    let sidecars: HashSet<&str> = init_specs
        .iter()
        .filter(|c| s(c, "/restartPolicy") == "Always")
        .map(|c| s(c, "/name"))
        .collect();
    total += sidecars.len();
    let mut reason = s(pod, "/status/phase").to_string();
    if !s(pod, "/status/reason").is_empty() {
        reason = s(pod, "/status/reason").to_string();
    }
    if arr(pod, "/status/conditions")
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let mut initializing = false;
    let init_statuses = arr(pod, "/status/initContainerStatuses");
    for (i, c) in init_statuses.iter().enumerate() {
        restarts =
            restarts.saturating_add(c.get("restartCount").and_then(Value::as_i64).unwrap_or(0));
        let term = c.pointer("/state/terminated");
        let waiting_reason = s(c, "/state/waiting/reason");
        let is_sidecar = sidecars.contains(s(c, "/name"));
        if let Some(t) = term
            && t.get("exitCode").and_then(Value::as_i64) == Some(0)
        {
            continue;
        }
        if is_sidecar && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = term {
            let r = t.get("reason").and_then(Value::as_str).unwrap_or("");
            reason = if r.is_empty() {
                let sig = t.get("signal").and_then(Value::as_i64).unwrap_or(0);
                if sig != 0 {
                    format!("Init:Signal:{sig}")
                } else {
                    format!(
                        "Init:ExitCode:{}",
                        t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                    )
                }
            } else {
                format!("Init:{r}")
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    if !initializing || condition_true(pod, "Initialized") {
        restarts = 0;
        let mut has_running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts =
                restarts.saturating_add(c.get("restartCount").and_then(Value::as_i64).unwrap_or(0));
            let wr = s(c, "/state/waiting/reason");
            let term = c.pointer("/state/terminated");
            if !wr.is_empty() {
                reason = wr.to_string();
            } else if let Some(t) = term {
                let r = t.get("reason").and_then(Value::as_str).unwrap_or("");
                if !r.is_empty() {
                    reason = r.to_string();
                } else {
                    let sig = t.get("signal").and_then(Value::as_i64).unwrap_or(0);
                    reason = if sig != 0 {
                        format!("Signal:{sig}")
                    } else {
                        format!(
                            "ExitCode:{}",
                            t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                        )
                    };
                }
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    let phase = s(pod, "/status/phase");
    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        if s(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    (format!("{ready}/{total}"), reason, restarts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let mut p = json!({"metadata": {"name": "a"}, "spec": {"containers": [
            {"name": "c", "image": "nginx", "ports": [{"containerPort": 80}], "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "d", "image": "busybox:1.35"}
        ]}});
        apply_defaults(&mut p, true);
        let s = &p["spec"];
        assert_eq!(s["restartPolicy"], "Always");
        assert_eq!(s["terminationGracePeriodSeconds"], 30);
        assert_eq!(s["dnsPolicy"], "ClusterFirst");
        assert_eq!(s["schedulerName"], "default-scheduler");
        assert_eq!(s["enableServiceLinks"], true);
        assert!(
            s.get("priority").is_none(),
            "the Priority admission sets it"
        );
        assert_eq!(s["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(s["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(s["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["containers"][0]["resources"]["requests"]["cpu"], "1");
        assert_eq!(
            s["containers"][0]["terminationMessagePath"],
            "/dev/termination-log"
        );
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["status"]["qosClass"], "Burstable");
        assert!(s.get("serviceAccountName").is_none());
    }

    #[test]
    fn image_tags() {
        assert!(image_tag_is_latest("nginx"));
        assert!(image_tag_is_latest("127.0.0.1:5000/library/nginx:latest"));
        assert!(image_tag_is_latest("127.0.0.1:5000/library/nginx"));
        assert!(!image_tag_is_latest("127.0.0.1:5000/library/busybox:1.35"));
        assert!(!image_tag_is_latest("busybox@sha256:abc"));
    }

    #[test]
    fn validation_errors() {
        let p = json!({"spec": {"containers": [{"name": "c"}, {"name": "c", "image": "x", "ports": [{"containerPort": 70000}],
            "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}], "restartPolicy": "Sometimes"}});
        let errs = validate(&p);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"spec.containers[0].image"));
        assert!(fields.contains(&"spec.containers[1].name"));
        assert!(fields.contains(&"spec.containers[1].ports[0].containerPort"));
        assert!(fields.contains(&"spec.containers[1].volumeMounts[0].name"));
        assert!(fields.contains(&"spec.restartPolicy"));
        assert!(
            validate(&json!({"spec": {}}))
                .iter()
                .any(|e| e.field == "spec.containers")
        );
    }

    #[test]
    fn update_rules() {
        let old = json!({"spec": {"containers": [{"name": "c", "image": "a"}]}});
        let img = json!({"spec": {"containers": [{"name": "c", "image": "b"}]}});
        assert!(validate_update(&old, &img).is_empty());
        let bad = json!({"spec": {"containers": [{"name": "c", "image": "a", "args": ["x"]}]}});
        assert_eq!(validate_update(&old, &bad).len(), 1);
    }

    #[test]
    fn ephemeral_container_rules() {
        let base = json!({"spec": {"containers": [{"name": "app", "image": "a"}],
            "volumes": [{"name": "data", "emptyDir": {}}]}});
        let with = |eph: Value| {
            let mut p = base.clone();
            p["spec"]["ephemeralContainers"] = eph;
            p
        };
        let dbg = json!({"name": "dbg", "image": "busybox", "targetContainerName": "app",
            "resources": {}, "volumeMounts": [{"name": "data", "mountPath": "/d"}]});
        let one = with(json!([dbg]));
        assert_eq!(validate_ephemeral_update(&base, &one), vec![]);
        assert_eq!(validate_new(&one).len(), 1, "not on create");
        assert!(validate_new(&base).is_empty());
        assert_eq!(
            validate_update(&base, &one).len(),
            1,
            "not through the pod itself"
        );
        // Existing ones stay; new ones are checked.
        let fields = |old: &Value, new: &Value| -> Vec<String> {
            validate_ephemeral_update(old, new)
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(&one, &base), vec!["spec.ephemeralContainers"]);
        let mut changed = dbg.clone();
        changed["image"] = json!("other");
        assert_eq!(
            fields(&one, &with(json!([changed]))),
            vec!["spec.ephemeralContainers"]
        );
        let bad = with(
            json!([dbg, {"name": "app", "image": "x", "ports": [{"containerPort": 80}],
            "targetContainerName": "nope", "volumeMounts": [{"name": "data", "mountPath": "/d", "subPath": "s"}]},
            {"name": "x", "resources": {"limits": {"cpu": "1"}}}]),
        );
        assert_eq!(
            fields(&one, &bad),
            vec![
                "spec.ephemeralContainers[1].name",
                "spec.ephemeralContainers[1].ports",
                "spec.ephemeralContainers[1].targetContainerName",
                "spec.ephemeralContainers[1].volumeMounts[0].subPath",
                "spec.ephemeralContainers[2].image",
                "spec.ephemeralContainers[2].resources",
            ]
        );
        let mut other = one.clone();
        other["spec"]["containers"][0]["image"] = json!("b");
        assert_eq!(
            fields(&base, &other),
            vec!["spec"],
            "only ephemeral containers change"
        );
    }

    #[test]
    fn status_column() {
        let pod = json!({"spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Pending",
            "containerStatuses": [{"name": "c", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert_eq!(
            status_columns(&pod),
            ("0/1".into(), "ContainerCreating".into(), 2)
        );
        let run = json!({"spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running",
            "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
        assert_eq!(status_columns(&run), ("1/1".into(), "Running".into(), 0));
        let init = json!({"spec": {"initContainers": [{"name": "i"}, {"name": "j"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i", "state": {"terminated": {"exitCode": 0}}}, {"name": "j", "state": {"running": {}}}]}});
        assert_eq!(status_columns(&init).1, "Init:1/2");
        let mut term = run.clone();
        term["metadata"] = json!({"deletionTimestamp": "2024-01-01T00:00:00Z"});
        assert_eq!(status_columns(&term).1, "Terminating");
        let done = json!({"spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Succeeded",
            "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
        assert_eq!(status_columns(&done).1, "Completed");
    }
}
