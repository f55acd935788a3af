//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into JSON.
//!
//! kubectl's typed commands (`kubectl create namespace`, `kubectl run`) send protobuf. The envelope is the
//! magic `k8s\0` followed by a `runtime.Unknown{typeMeta{apiVersion,kind}, raw, …}`; `raw` is the object.
//! The schema table below (with its submodules) mirrors the `generated.proto` of each group at kube 1.32 for
//! every message reachable from the kinds [`decode`] accepts, so a request body loses nothing: a field
//! number the table does not know is refused (415, "send JSON") rather than dropped. Responses decoded
//! with [`decode_known`] still skip unknown fields.

use serde_json::{Map, Value, json};

#[derive(Clone, Copy)]
pub(crate) enum Ty {
    Str,
    Int,
    /// A plain Go `bool`: false is the zero value, left out of the JSON.
    Bool,
    /// A Go `*bool`: false is a value (`enableServiceLinks: false`, `allowPrivilegeEscalation: false`) and
    /// is kept.
    OptBool,
    Msg(&'static str),
    /// map<string, string>
    MapStr,
    /// map<string, Quantity>
    MapQty,
    Quantity,
    Time,
    /// map<string, bytes> (Secret and ConfigMap binary data), base64 in JSON.
    MapBytes,
    /// map<string, meta/v1 Time> (PodDisruptionBudget status disruptedPods).
    MapTime,
    /// map<string, ExtraValue{repeated string items = 1}>, a JSON object of string arrays (user extra).
    MapStrList,
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

mod affinity;
mod apps;
mod authz;
mod autoscaling;
mod batch;
mod container;
mod extra;
mod networking;
mod node;
mod pod;
mod pod_status;
mod policy;
mod probe;
mod quota;
mod replication;
mod scheduling;
mod volume;
mod volume_sources;

/// The submodules' tables, asked in turn for a message the main table lacks.
const PARTS: &[fn(&str) -> &'static [F]] = &[
    extra::schema,
    apps::schema,
    batch::schema,
    policy::schema,
    networking::schema,
    autoscaling::schema,
    quota::schema,
    scheduling::schema,
    replication::schema,
    authz::schema,
    node::schema,
    pod::schema,
    pod_status::schema,
    affinity::schema,
    container::schema,
    probe::schema,
    volume::schema,
    volume_sources::schema,
];

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
                f(6, "controller", OptBool),
                f(7, "blockOwnerDeletion", OptBool),
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
        "Role" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                r(2, "rules", Msg("PolicyRule")),
            ];
            S
        }
        "ClusterRole" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                r(2, "rules", Msg("PolicyRule")),
                f(3, "aggregationRule", Msg("AggregationRule")),
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
                f(6, "extra", MapStrList),
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
                f(3, "status", Msg("SubjectAccessReviewStatus")),
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
                f(8, "fieldSelector", Msg("FieldSelectorAttributes")),
                f(9, "labelSelector", Msg("LabelSelectorAttributes")),
            ];
            S
        }
        "SelfSubjectReview" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "status", Msg("SelfSubjectReviewStatus")),
            ];
            S
        }
        "SelfSubjectRulesReview" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("SelfSubjectRulesReviewSpec")),
                f(3, "status", Msg("SubjectRulesReviewStatus")),
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
                f(4, "immutable", OptBool),
            ];
            S
        }
        "Secret" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "data", MapBytes),
                f(3, "type", Str),
                f(4, "stringData", MapStr),
                f(5, "immutable", OptBool),
            ];
            S
        }
        "ServiceAccount" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                r(2, "secrets", Msg("ObjectReference")),
                r(3, "imagePullSecrets", Msg("LocalObjectReference")),
                f(4, "automountServiceAccountToken", OptBool),
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
                f(20, "allocateLoadBalancerNodePorts", OptBool),
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

        _ => PARTS
            .iter()
            .map(|part| part(msg))
            .find(|s| !s.is_empty())
            .unwrap_or(&[]),
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
    /// A fixed-width (64- or 32-bit) field: no Kubernetes type in the table has one, so it is never a
    /// known field.
    Fixed,
}

/// The (field number, payload) pairs of a message.
fn fields(b: &[u8]) -> Result<Vec<(u64, P<'_>)>, String> {
    let mut rd = Reader { b, pos: 0 };
    let mut out = Vec::new();
    while !rd.done() {
        let key = rd.varint()?;
        let (num, wt) = (key >> 3, key & 7);
        match wt {
            0 => out.push((num, P::V(rd.varint()?))),
            2 => out.push((num, P::B(rd.bytes()?))),
            other => {
                rd.skip(other)?;
                out.push((num, P::Fixed));
            }
        }
    }
    Ok(out)
}

/// Whether payload `v` has the wire type Go's marshaller writes for field `fd` (varints for integers and
/// booleans, packed or not when repeated; length-delimited for everything else).
fn wire_type_fits(fd: &F, v: P<'_>) -> bool {
    match (fd.ty, v) {
        (Int | Bool | OptBool, P::V(_)) => true,
        (Int, P::B(_)) => fd.rep,
        (Int | Bool | OptBool, _) | (_, P::V(_) | P::Fixed) => false,
        (_, P::B(_)) => true,
    }
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
        (OptBool, P::V(x)) => Some(Value::Bool(x != 0)),
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

/// How [`message`] treats a field number the schema table lacks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unknown {
    /// Responses ([`decode_known`]): skip it, as a protobuf reader of an older schema does.
    Skip,
    /// Request bodies ([`decode`]): refuse it, so that no field the client set is silently dropped.
    Refuse,
}

fn message(
    name: &str,
    b: &[u8],
    depth: usize,
    unknown: Unknown,
) -> Result<Map<String, Value>, String> {
    if depth > 32 {
        return Err("message nesting too deep".into());
    }
    let sch = schema(name);
    let mut out = Map::new();
    for (num, v) in fields(b)? {
        let Some(fd) = sch.iter().find(|x| x.num == num) else {
            if unknown == Unknown::Refuse {
                return Err(format!(
                    "protobuf field {num} of {name} is not supported by this server; send JSON"
                ));
            }
            continue;
        };
        if !wire_type_fits(fd, v) {
            if unknown == Unknown::Refuse {
                return Err(format!(
                    "protobuf field {num} of {name} ({}) has the wrong wire type",
                    fd.name
                ));
            }
            continue;
        }
        match (fd.ty, v) {
            (Msg(m), P::B(b)) => {
                let sub = Value::Object(message(m, b, depth + 1, unknown)?);
                push(&mut out, fd, sub);
            }
            (Inline(m), P::B(b)) => {
                for (k, x) in message(m, b, depth + 1, unknown)? {
                    out.insert(k, x);
                }
            }
            (MapTime | MapStrList, P::B(b)) => {
                let mut k = String::new();
                let mut val = Value::Null;
                for (num, v) in fields(b)? {
                    match (num, v) {
                        (1, P::B(x)) => k = as_string(x)?,
                        (2, P::B(x)) if matches!(fd.ty, MapTime) => {
                            val = time_json(x)?.unwrap_or(Value::Null)
                        }
                        (2, P::B(x)) => {
                            let mut items = Vec::new();
                            for (n, item) in fields(x)? {
                                if let (1, P::B(s)) = (n, item) {
                                    items.push(json!(as_string(s)?));
                                }
                            }
                            val = Value::Array(items);
                        }
                        _ => {}
                    }
                }
                if val.is_null() && matches!(fd.ty, MapStrList) {
                    val = json!([]);
                }
                let e = out.entry(fd.name).or_insert_with(|| json!({}));
                if let Some(m) = e.as_object_mut() {
                    m.insert(k, val);
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
                    let meta = message("ListMeta", b, 0, Unknown::Skip)?;
                    out.insert("metadata".into(), Value::Object(meta));
                }
                (2, P::B(b)) => {
                    items.push(Value::Object(message(item, b, 0, Unknown::Skip)?));
                }
                _ => {}
            }
        }
        out.insert("items".into(), Value::Array(items));
        out
    } else if schema(&kind).is_empty() {
        return Err(format!("no schema for kind {kind:?}"));
    } else {
        message(&kind, &raw, 0, Unknown::Skip)?
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
                | "ReplicationController"
                | "Job"
                | "CronJob"
                | "PodDisruptionBudget"
                | "Ingress"
                | "IngressClass"
                | "PriorityClass"
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
    let mut obj = message(&kind, &raw, 0, Unknown::Refuse)?;
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
