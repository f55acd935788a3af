//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into JSON.
//!
//! kubectl's typed commands (`kubectl create namespace`, `kubectl run`) send protobuf. The envelope is the
//! magic `k8s\0` followed by a `runtime.Unknown{typeMeta{apiVersion,kind}, raw, …}`; `raw` is the object.
//! Only the kinds and fields in the schema table below are understood (the ones kubectl's generators and
//! a node agent write); other fields are skipped.

use serde_json::{Map, Value, json};

#[derive(Clone, Copy)]
pub(crate) enum Ty {
    Str,
    Int,
    Bool,
    Msg(&'static str),
    /// map<string, string>
    MapStr,
    /// map<string, Quantity>
    MapQty,
    Quantity,
    Time,
    /// map<string, bytes> (Secret and ConfigMap binary data), base64 in JSON.
    MapBytes,
    /// bytes, base64 in JSON (CertificateSigningRequest request and certificate).
    Bytes,
    /// intstr.IntOrString { type (1), intVal (2), strVal (3) }.
    IntOrStr,
    /// A message whose fields are inlined into the parent (Go embedded structs, e.g. Volume.volumeSource).
    Inline(&'static str),
    /// meta/v1 FieldsV1 { bytes Raw = 1 }: a JSON document (managedFields[].fieldsV1) as bytes.
    Fields,
}

pub(crate) struct F {
    pub(crate) num: u64,
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
    pub(crate) rep: bool,
}

const fn f(num: u64, name: &'static str, ty: Ty) -> F {
    F {
        num,
        name,
        ty,
        rep: false,
    }
}
const fn r(num: u64, name: &'static str, ty: Ty) -> F {
    F {
        num,
        name,
        ty,
        rep: true,
    }
}

use Ty::*;

mod apps;
mod autoscaling;
mod batch;
mod extra;
mod policy;
mod quota;

pub(crate) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "ObjectMeta" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "generateName", Str),
                f(3, "namespace", Str),
                f(5, "uid", Str),
                f(6, "resourceVersion", Str),
                f(7, "generation", Int),
                f(8, "creationTimestamp", Time),
                f(9, "deletionTimestamp", Time),
                f(10, "deletionGracePeriodSeconds", Int),
                f(11, "labels", MapStr),
                f(12, "annotations", MapStr),
                r(13, "ownerReferences", Msg("OwnerReference")),
                r(14, "finalizers", Str),
                f(4, "selfLink", Str),
                r(17, "managedFields", Msg("ManagedFieldsEntry")),
            ];
            S
        }
        "OwnerReference" => {
            const S: &[F] = &[
                f(5, "apiVersion", Str),
                f(1, "kind", Str),
                f(3, "name", Str),
                f(4, "uid", Str),
                f(6, "controller", Bool),
                f(7, "blockOwnerDeletion", Bool),
            ];
            S
        }
        "Namespace" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("NamespaceSpec")),
                f(3, "status", Msg("NamespaceStatus")),
            ];
            S
        }
        "NamespaceSpec" => {
            const S: &[F] = &[r(1, "finalizers", Str)];
            S
        }
        "NamespaceStatus" => {
            const S: &[F] = &[
                f(1, "phase", Str),
                r(2, "conditions", Msg("NamespaceCondition")),
            ];
            S
        }
        // rbac.authorization.k8s.io/v1 and authorization.k8s.io/v1 (kubectl create role/rolebinding,
        // kubectl auth can-i); served by `crate::authz`.
        "Role" | "ClusterRole" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                r(2, "rules", Msg("PolicyRule")),
            ];
            S
        }
        "PolicyRule" => {
            const S: &[F] = &[
                r(1, "verbs", Str),
                r(2, "apiGroups", Str),
                r(3, "resources", Str),
                r(4, "resourceNames", Str),
                r(5, "nonResourceURLs", Str),
            ];
            S
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                r(2, "subjects", Msg("Subject")),
                f(3, "roleRef", Msg("RoleRef")),
            ];
            S
        }
        "Subject" => {
            const S: &[F] = &[
                f(1, "kind", Str),
                f(2, "apiGroup", Str),
                f(3, "name", Str),
                f(4, "namespace", Str),
            ];
            S
        }
        // certificates.k8s.io/v1 (kubectl certificate approve|deny PUTs the object to /approval).
        "CertificateSigningRequest" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("CertificateSigningRequestSpec")),
                f(3, "status", Msg("CertificateSigningRequestStatus")),
            ];
            S
        }
        "CertificateSigningRequestSpec" => {
            const S: &[F] = &[
                f(1, "request", Bytes),
                f(2, "username", Str),
                f(3, "uid", Str),
                r(4, "groups", Str),
                r(5, "usages", Str),
                f(7, "signerName", Str),
                f(8, "expirationSeconds", Int),
            ];
            S
        }
        "CertificateSigningRequestStatus" => {
            const S: &[F] = &[
                r(1, "conditions", Msg("CertificateSigningRequestCondition")),
                f(2, "certificate", Bytes),
            ];
            S
        }
        "CertificateSigningRequestCondition" => {
            const S: &[F] = &[
                f(1, "type", Str),
                f(2, "reason", Str),
                f(3, "message", Str),
                f(4, "lastUpdateTime", Time),
                f(5, "lastTransitionTime", Time),
                f(6, "status", Str),
            ];
            S
        }
        "RoleRef" => {
            const S: &[F] = &[f(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)];
            S
        }
        "SelfSubjectAccessReview" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("SelfSubjectAccessReviewSpec")),
            ];
            S
        }
        "SelfSubjectAccessReviewSpec" => {
            const S: &[F] = &[
                f(1, "resourceAttributes", Msg("ResourceAttributes")),
                f(2, "nonResourceAttributes", Msg("NonResourceAttributes")),
            ];
            S
        }
        "ResourceAttributes" => {
            const S: &[F] = &[
                f(1, "namespace", Str),
                f(2, "verb", Str),
                f(3, "group", Str),
                f(4, "version", Str),
                f(5, "resource", Str),
                f(6, "subresource", Str),
                f(7, "name", Str),
            ];
            S
        }
        "SelfSubjectReview" => {
            const S: &[F] = &[f(1, "metadata", Msg("ObjectMeta"))];
            S
        }
        "SelfSubjectRulesReview" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("SelfSubjectRulesReviewSpec")),
            ];
            S
        }
        "SelfSubjectRulesReviewSpec" => {
            const S: &[F] = &[f(1, "namespace", Str)];
            S
        }
        "NonResourceAttributes" => {
            const S: &[F] = &[f(1, "path", Str), f(2, "verb", Str)];
            S
        }
        "Pod" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("PodSpec")),
                f(3, "status", Msg("PodStatus")),
            ];
            S
        }
        "PodSpec" => {
            const S: &[F] = &[
                r(1, "volumes", Msg("Volume")),
                r(20, "initContainers", Msg("Container")),
                r(2, "containers", Msg("Container")),
                f(3, "restartPolicy", Str),
                f(4, "terminationGracePeriodSeconds", Int),
                f(5, "activeDeadlineSeconds", Int),
                f(6, "dnsPolicy", Str),
                f(7, "nodeSelector", MapStr),
                f(8, "serviceAccountName", Str),
                f(9, "serviceAccount", Str),
                f(21, "automountServiceAccountToken", Bool),
                f(10, "nodeName", Str),
                f(11, "hostNetwork", Bool),
                f(12, "hostPID", Bool),
                f(13, "hostIPC", Bool),
                f(14, "securityContext", Msg("Empty")),
                r(15, "imagePullSecrets", Msg("LocalObjectReference")),
                f(16, "hostname", Str),
                f(17, "subdomain", Str),
                f(19, "schedulerName", Str),
                r(22, "tolerations", Msg("Toleration")),
                f(24, "priorityClassName", Str),
                f(25, "priority", Int),
                f(29, "runtimeClassName", Str),
                f(30, "enableServiceLinks", Bool),
                f(31, "preemptionPolicy", Str),
            ];
            S
        }
        "PodStatus" => {
            const S: &[F] = &[
                f(1, "phase", Str),
                r(2, "conditions", Msg("PodCondition")),
                f(3, "message", Str),
                f(4, "reason", Str),
                f(5, "hostIP", Str),
                f(6, "podIP", Str),
                f(7, "startTime", Time),
                r(8, "containerStatuses", Msg("ContainerStatus")),
                r(10, "initContainerStatuses", Msg("ContainerStatus")),
                f(9, "qosClass", Str),
                f(11, "nominatedNodeName", Str),
                r(12, "podIPs", Msg("PodIP")),
                r(16, "hostIPs", Msg("HostIP")),
                f(17, "observedGeneration", Int),
            ];
            S
        }
        "PodCondition" => {
            const S: &[F] = &[
                f(1, "type", Str),
                f(2, "status", Str),
                f(3, "lastProbeTime", Time),
                f(4, "lastTransitionTime", Time),
                f(5, "reason", Str),
                f(6, "message", Str),
                f(7, "observedGeneration", Int),
            ];
            S
        }
        "ContainerStatus" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "state", Msg("ContainerState")),
                f(3, "lastState", Msg("ContainerState")),
                f(4, "ready", Bool),
                f(5, "restartCount", Int),
                f(6, "image", Str),
                f(7, "imageID", Str),
                f(8, "containerID", Str),
                f(9, "started", Bool),
            ];
            S
        }
        "ContainerState" => {
            const S: &[F] = &[
                f(1, "waiting", Msg("ContainerStateWaiting")),
                f(2, "running", Msg("ContainerStateRunning")),
                f(3, "terminated", Msg("ContainerStateTerminated")),
            ];
            S
        }
        "ContainerStateWaiting" => {
            const S: &[F] = &[f(1, "reason", Str), f(2, "message", Str)];
            S
        }
        "ContainerStateRunning" => {
            const S: &[F] = &[f(1, "startedAt", Time)];
            S
        }
        "ContainerStateTerminated" => {
            const S: &[F] = &[
                f(1, "exitCode", Int),
                f(2, "signal", Int),
                f(3, "reason", Str),
                f(4, "message", Str),
                f(5, "startedAt", Time),
                f(6, "finishedAt", Time),
                f(7, "containerID", Str),
            ];
            S
        }
        "Container" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "image", Str),
                r(3, "command", Str),
                r(4, "args", Str),
                f(5, "workingDir", Str),
                r(6, "ports", Msg("ContainerPort")),
                r(7, "env", Msg("EnvVar")),
                f(8, "resources", Msg("ResourceRequirements")),
                r(9, "volumeMounts", Msg("VolumeMount")),
                f(13, "terminationMessagePath", Str),
                f(20, "terminationMessagePolicy", Str),
                f(14, "imagePullPolicy", Str),
                f(16, "stdin", Bool),
                f(17, "stdinOnce", Bool),
                f(18, "tty", Bool),
                f(24, "restartPolicy", Str),
            ];
            S
        }
        "ContainerPort" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "hostPort", Int),
                f(3, "containerPort", Int),
                f(4, "protocol", Str),
                f(5, "hostIP", Str),
            ];
            S
        }
        "EnvVar" => {
            const S: &[F] = &[f(1, "name", Str), f(2, "value", Str)];
            S
        }
        "ResourceRequirements" => {
            const S: &[F] = &[f(1, "limits", MapQty), f(2, "requests", MapQty)];
            S
        }
        "VolumeMount" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "readOnly", Bool),
                f(3, "mountPath", Str),
                f(4, "subPath", Str),
                f(5, "mountPropagation", Str),
            ];
            S
        }
        "Volume" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "volumeSource", Inline("VolumeSource")),
            ];
            S
        }
        "VolumeSource" => {
            const S: &[F] = &[
                f(1, "hostPath", Msg("HostPathVolumeSource")),
                f(2, "emptyDir", Msg("EmptyDirVolumeSource")),
            ];
            S
        }
        "HostPathVolumeSource" => {
            const S: &[F] = &[f(1, "path", Str), f(2, "type", Str)];
            S
        }
        "EmptyDirVolumeSource" => {
            const S: &[F] = &[f(1, "medium", Str), f(2, "sizeLimit", Quantity)];
            S
        }
        "Toleration" => {
            const S: &[F] = &[
                f(1, "key", Str),
                f(2, "operator", Str),
                f(3, "value", Str),
                f(4, "effect", Str),
                f(5, "tolerationSeconds", Int),
            ];
            S
        }
        "LocalObjectReference" => {
            const S: &[F] = &[f(1, "name", Str)];
            S
        }
        "ObjectReference" => {
            const S: &[F] = &[
                f(1, "kind", Str),
                f(2, "namespace", Str),
                f(3, "name", Str),
                f(4, "uid", Str),
                f(5, "apiVersion", Str),
                f(6, "resourceVersion", Str),
                f(7, "fieldPath", Str),
            ];
            S
        }
        "ConfigMap" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "data", MapStr),
                f(3, "binaryData", MapBytes),
                f(4, "immutable", Bool),
            ];
            S
        }
        "Secret" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "data", MapBytes),
                f(3, "type", Str),
                f(4, "stringData", MapStr),
                f(5, "immutable", Bool),
            ];
            S
        }
        "ServiceAccount" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                r(2, "secrets", Msg("ObjectReference")),
                r(3, "imagePullSecrets", Msg("LocalObjectReference")),
                f(4, "automountServiceAccountToken", Bool),
            ];
            S
        }
        "Service" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("ServiceSpec")),
                f(3, "status", Msg("ServiceStatus")),
            ];
            S
        }
        "ServiceSpec" => {
            const S: &[F] = &[
                r(1, "ports", Msg("ServicePort")),
                f(2, "selector", MapStr),
                f(3, "clusterIP", Str),
                r(18, "clusterIPs", Str),
                f(4, "type", Str),
                r(5, "externalIPs", Str),
                f(7, "sessionAffinity", Str),
                f(8, "loadBalancerIP", Str),
                r(9, "loadBalancerSourceRanges", Str),
                f(10, "externalName", Str),
                f(11, "externalTrafficPolicy", Str),
                f(12, "healthCheckNodePort", Int),
                f(13, "publishNotReadyAddresses", Bool),
                f(14, "sessionAffinityConfig", Msg("SessionAffinityConfig")),
                r(19, "ipFamilies", Str),
                f(17, "ipFamilyPolicy", Str),
                f(20, "allocateLoadBalancerNodePorts", Bool),
                f(21, "loadBalancerClass", Str),
                f(22, "internalTrafficPolicy", Str),
                f(23, "trafficDistribution", Str),
            ];
            S
        }
        "ServicePort" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "protocol", Str),
                f(6, "appProtocol", Str),
                f(3, "port", Int),
                f(4, "targetPort", IntOrStr),
                f(5, "nodePort", Int),
            ];
            S
        }
        "Endpoints" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                r(2, "subsets", Msg("EndpointSubset")),
            ];
            S
        }
        "EndpointSubset" => {
            const S: &[F] = &[
                r(1, "addresses", Msg("EndpointAddress")),
                r(2, "notReadyAddresses", Msg("EndpointAddress")),
                r(3, "ports", Msg("EndpointPort")),
            ];
            S
        }
        "EndpointAddress" => {
            const S: &[F] = &[
                f(1, "ip", Str),
                f(2, "targetRef", Msg("ObjectReference")),
                f(3, "hostname", Str),
                f(4, "nodeName", Str),
            ];
            S
        }
        "EndpointPort" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "port", Int),
                f(3, "protocol", Str),
                f(4, "appProtocol", Str),
            ];
            S
        }

        _ => match extra::schema(msg) {
            [] => match apps::schema(msg) {
                [] => match batch::schema(msg) {
                    [] => match policy::schema(msg) {
                        [] => match autoscaling::schema(msg) {
                            [] => quota::schema(msg),
                            s => s,
                        },
                        s => s,
                    },
                    s => s,
                },
                s => s,
            },
            s => s,
        },
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or("truncated field")?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn skip(&mut self, wt: u64) -> Result<(), String> {
        match wt {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            _ => Err(format!("unsupported wire type {wt}")),
        }
    }
    fn advance(&mut self, n: usize) -> Result<(), String> {
        if self.pos + n > self.b.len() {
            return Err("truncated field".into());
        }
        self.pos += n;
        Ok(())
    }
    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }
}

#[derive(Clone, Copy)]
enum P<'a> {
    V(u64),
    B(&'a [u8]),
}

/// The (field number, payload) pairs of a message; fixed-width fields are skipped.
fn fields(b: &[u8]) -> Result<Vec<(u64, P<'_>)>, String> {
    let mut rd = Reader { b, pos: 0 };
    let mut out = Vec::new();
    while !rd.done() {
        let key = rd.varint()?;
        let (num, wt) = (key >> 3, key & 7);
        match wt {
            0 => out.push((num, P::V(rd.varint()?))),
            2 => out.push((num, P::B(rd.bytes()?))),
            other => rd.skip(other)?,
        }
    }
    Ok(out)
}

fn as_string(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in string field".to_string())
}

fn time_json(b: &[u8]) -> Result<Option<Value>, String> {
    let mut secs: i64 = 0;
    let mut nanos: i64 = 0;
    for (num, v) in fields(b)? {
        match (num, v) {
            (1, P::V(x)) => secs = x as i64,
            (2, P::V(x)) => nanos = x as i64,
            _ => {}
        }
    }
    if secs <= 0 {
        return Ok(None);
    }
    let Ok(t) = jiff::Timestamp::from_second(secs) else {
        return Ok(None);
    };
    if nanos <= 0 || nanos >= 1_000_000_000 {
        return Ok(Some(json!(t.to_string())));
    }
    // MicroTime: six fractional digits, as kube-apiserver formats it.
    let whole = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(Some(json!(format!("{whole}.{:06}Z", nanos / 1000))))
}

fn quantity_json(b: &[u8]) -> Result<Value, String> {
    for (num, v) in fields(b)? {
        if let (1, P::B(x)) = (num, v) {
            return Ok(json!(as_string(x)?));
        }
    }
    Ok(json!("0"))
}

fn map_entry(b: &[u8], qty: bool) -> Result<(String, Value), String> {
    let mut k = String::new();
    let mut val = if qty { json!("0") } else { json!("") };
    for (num, v) in fields(b)? {
        match (num, v) {
            (1, P::B(x)) => k = as_string(x)?,
            (2, P::B(x)) => {
                val = if qty {
                    quantity_json(x)?
                } else {
                    json!(as_string(x)?)
                }
            }
            _ => {}
        }
    }
    Ok((k, val))
}

fn scalar(ty: Ty, v: P<'_>) -> Result<Option<Value>, String> {
    Ok(match (ty, v) {
        (Str, P::B(b)) => {
            let s = as_string(b)?;
            (!s.is_empty()).then(|| json!(s))
        }
        (Int, P::V(x)) => Some(json!(x as i64)),
        (Bool, P::V(x)) => (x != 0).then_some(Value::Bool(true)),
        (Quantity, P::B(b)) => Some(quantity_json(b)?),
        (Time, P::B(b)) => time_json(b)?,
        (Bytes, P::B(b)) => {
            use base64::Engine;
            Some(json!(base64::engine::general_purpose::STANDARD.encode(b)))
        }
        (Fields, P::B(b)) => {
            let mut raw: &[u8] = &[];
            for (num, v) in fields(b)? {
                if let (1, P::B(x)) = (num, v) {
                    raw = x;
                }
            }
            Some(serde_json::from_slice(raw).map_err(|e| format!("fieldsV1: {e}"))?)
        }
        _ => None,
    })
}

fn message(name: &str, b: &[u8], depth: usize) -> Result<Map<String, Value>, String> {
    if depth > 32 {
        return Err("message nesting too deep".into());
    }
    let sch = schema(name);
    let mut out = Map::new();
    for (num, v) in fields(b)? {
        let Some(fd) = sch.iter().find(|x| x.num == num) else {
            continue;
        };
        match (fd.ty, v) {
            (Msg(m), P::B(b)) => {
                let sub = Value::Object(message(m, b, depth + 1)?);
                push(&mut out, fd, sub);
            }
            (Inline(m), P::B(b)) => {
                for (k, x) in message(m, b, depth + 1)? {
                    out.insert(k, x);
                }
            }
            (MapBytes, P::B(b)) => {
                use base64::Engine;
                let mut k = String::new();
                let mut val: &[u8] = &[];
                for (num, v) in fields(b)? {
                    match (num, v) {
                        (1, P::B(x)) => k = as_string(x)?,
                        (2, P::B(x)) => val = x,
                        _ => {}
                    }
                }
                let e = out.entry(fd.name).or_insert_with(|| json!({}));
                if let Some(m) = e.as_object_mut() {
                    m.insert(
                        k,
                        json!(base64::engine::general_purpose::STANDARD.encode(val)),
                    );
                }
            }
            (IntOrStr, P::B(b)) => {
                let mut ty = 0;
                let mut int = 0i64;
                let mut st = String::new();
                for (num, v) in fields(b)? {
                    match (num, v) {
                        (1, P::V(x)) => ty = x,
                        (2, P::V(x)) => int = x as i32 as i64,
                        (3, P::B(x)) => st = as_string(x)?,
                        _ => {}
                    }
                }
                push(&mut out, fd, if ty == 1 { json!(st) } else { json!(int) });
            }
            (MapStr | MapQty, P::B(b)) => {
                let (k, x) = map_entry(b, matches!(fd.ty, MapQty))?;
                let e = out.entry(fd.name).or_insert_with(|| json!({}));
                if let Some(m) = e.as_object_mut() {
                    m.insert(k, x);
                }
            }
            (Int, P::B(b)) if fd.rep => {
                let mut rd = Reader { b, pos: 0 };
                while !rd.done() {
                    push(&mut out, fd, json!(rd.varint()? as i64));
                }
            }
            (ty, v) => {
                if let Some(x) = scalar(ty, v)? {
                    push(&mut out, fd, x);
                } else if fd.rep && matches!(ty, Str) {
                    push(&mut out, fd, json!(""));
                }
            }
        }
    }
    // Go writes ObjectMeta.generation (a plain int64) even when 0; its JSON tag omits it then. A pod
    // template's metadata would otherwise carry `generation: 0` where kube-apiserver shows none.
    if name == "ObjectMeta" && out.get("generation").and_then(Value::as_i64) == Some(0) {
        out.remove("generation");
    }
    Ok(out)
}

fn push(out: &mut Map<String, Value>, fd: &F, v: Value) {
    if fd.rep {
        let e = out.entry(fd.name).or_insert_with(|| json!([]));
        if let Some(a) = e.as_array_mut() {
            a.push(v);
        }
    } else {
        out.insert(fd.name.to_string(), v);
    }
}

/// Decode a `k8s\0`-prefixed body of any kind (or `<Kind>List`) the schema table knows: the inverse of
/// [`crate::protobuf_encode::encode`]. Request bodies go through [`decode`], which admits fewer kinds.
pub fn decode_known(body: &[u8]) -> Result<Value, String> {
    let (api_version, kind, raw) = envelope(body)?;
    let mut obj = if let Some(item) = kind.strip_suffix("List").filter(|k| !schema(k).is_empty()) {
        let mut out = Map::new();
        let mut items = Vec::new();
        for (num, v) in fields(&raw)? {
            match (num, v) {
                (1, P::B(b)) => {
                    out.insert("metadata".into(), Value::Object(message("ListMeta", b, 0)?));
                }
                (2, P::B(b)) => items.push(Value::Object(message(item, b, 0)?)),
                _ => {}
            }
        }
        out.insert("items".into(), Value::Array(items));
        out
    } else if schema(&kind).is_empty() {
        return Err(format!("no schema for kind {kind:?}"));
    } else {
        message(&kind, &raw, 0)?
    };
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

/// The apiVersion, kind and raw message of a `k8s\0` + `runtime.Unknown` envelope.
fn envelope(body: &[u8]) -> Result<(String, String, Vec<u8>), String> {
    let rest = body
        .strip_prefix(b"k8s\x00")
        .ok_or("missing the k8s protobuf magic prefix")?;
    let mut type_meta = (String::new(), String::new());
    let mut raw = Vec::new();
    for (num, v) in fields(rest)? {
        match (num, v) {
            (1, P::B(tm)) => {
                for (n, x) in fields(tm)? {
                    match (n, x) {
                        (1, P::B(s)) => type_meta.0 = as_string(s)?,
                        (2, P::B(s)) => type_meta.1 = as_string(s)?,
                        _ => {}
                    }
                }
            }
            (2, P::B(b)) => raw = b.to_vec(),
            _ => {}
        }
    }
    Ok((type_meta.0, type_meta.1, raw))
}

/// Decode a `k8s\0`-prefixed protobuf body into the JSON form of the object.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let (api_version, kind, raw) = envelope(body)?;
    if schema(&kind).is_empty()
        || !matches!(
            kind.as_str(),
            "Pod"
                | "Namespace"
                | "ConfigMap"
                | "Secret"
                | "ServiceAccount"
                | "Service"
                | "Endpoints"
                | "Role"
                | "ClusterRole"
                | "RoleBinding"
                | "ClusterRoleBinding"
                | "SelfSubjectAccessReview"
                | "SelfSubjectRulesReview"
                | "SelfSubjectReview"
                | "CertificateSigningRequest"
                | "Eviction"
                | "TokenRequest"
                | "Lease"
                | "Event"
                | "Deployment"
                | "ReplicaSet"
                | "Job"
                | "CronJob"
                | "PodDisruptionBudget"
                | "HorizontalPodAutoscaler"
                | "ResourceQuota"
        )
        // The schema table has the autoscaling/v1 message; v2 bodies would be misread.
        || (kind == "HorizontalPodAutoscaler" && api_version != "autoscaling/v1")
    {
        return Err(format!(
            "protobuf bodies of kind {kind:?} are not supported; send JSON"
        ));
    }
    let mut obj = message(&kind, &raw, 0)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn ld(num: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }
    fn vi(num: u64, v: u64, out: &mut Vec<u8>) {
        varint(num << 3, out);
        varint(v, out);
    }

    #[test]
    fn decodes_a_pod_like_kubectl_run() {
        let mut meta = Vec::new();
        ld(1, b"p1", &mut meta);
        let mut entry = Vec::new();
        ld(1, b"run", &mut entry);
        ld(2, b"p1", &mut entry);
        ld(11, &entry, &mut meta);
        let mut ts = Vec::new();
        vi(1, (-62135596800i64) as u64, &mut ts);
        ld(8, &ts, &mut meta);
        let mut port = Vec::new();
        vi(3, 80, &mut port);
        let mut qty = Vec::new();
        ld(1, b"100m", &mut qty);
        let mut lim = Vec::new();
        ld(1, b"cpu", &mut lim);
        ld(2, &qty, &mut lim);
        let mut res = Vec::new();
        ld(1, &lim, &mut res);
        let mut c = Vec::new();
        ld(1, b"p1", &mut c);
        ld(2, b"busybox:1.35", &mut c);
        ld(4, b"sleep", &mut c);
        ld(4, b"100", &mut c);
        ld(6, &port, &mut c);
        ld(8, &res, &mut c);
        vi(16, 0, &mut c);
        let mut spec = Vec::new();
        ld(2, &c, &mut spec);
        ld(3, b"Never", &mut spec);
        let mut pod = Vec::new();
        ld(1, &meta, &mut pod);
        ld(2, &spec, &mut pod);
        ld(3, &[], &mut pod);
        let mut tm = Vec::new();
        ld(1, b"v1", &mut tm);
        ld(2, b"Pod", &mut tm);
        let mut body = b"k8s\x00".to_vec();
        ld(1, &tm, &mut body);
        ld(2, &pod, &mut body);
        ld(4, b"", &mut body);
        let v = decode(&body).expect("decode");
        assert_eq!(v["kind"], "Pod");
        assert_eq!(v["metadata"]["name"], "p1");
        assert_eq!(v["metadata"]["labels"]["run"], "p1");
        assert!(v["metadata"].get("creationTimestamp").is_none());
        let c = &v["spec"]["containers"][0];
        assert_eq!(c["image"], "busybox:1.35");
        assert_eq!(c["args"], json!(["sleep", "100"]));
        assert_eq!(c["ports"][0]["containerPort"], 80);
        assert_eq!(c["resources"]["limits"]["cpu"], "100m");
        assert!(c.get("stdin").is_none());
        assert_eq!(v["spec"]["restartPolicy"], "Never");
        assert!(decode(b"nope").is_err());
        assert!(decode(b"k8s\x00\x0a\xff").is_err());
    }
}
