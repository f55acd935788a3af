//! REST verbs over the store: create, get, list, update, patch, delete, binding, and the helpers they share.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::patch::{self, PatchType};
use crate::resources::{Kind, ResourceDef, by_kind, table};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult, FieldError};
use crate::store::{KeyValue, Store, StoreError};
use crate::strict::{self, FieldValidation};

/// Query parameters, in order.
#[derive(Debug, Clone, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        let mut out = Vec::new();
        for part in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            out.push((decode(k), decode(v)));
        }
        Query(out)
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1") | Some(""))
    }
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}

fn rfc3339_after(secs: i64) -> String {
    let now = jiff::Timestamp::now().as_second();
    jiff::Timestamp::from_second(now.saturating_add(secs))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now_rfc3339())
}

pub fn set_rv(v: &mut Value, rev: i64) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), Value::String(rev.to_string()));
    } else if let Some(o) = v.as_object_mut() {
        o.insert(
            "metadata".into(),
            json!({"resourceVersion": rev.to_string()}),
        );
    }
}

pub fn decode_kv(kv: &KeyValue) -> ApiResult<Value> {
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("decoding {}: {e}", kv.key)))?;
    set_rv(&mut v, kv.mod_revision);
    Ok(v)
}

/// A stored object in the form of `def` (events.k8s.io events are stored as core/v1 events).
pub fn decode_for(def: &ResourceDef, kv: &KeyValue) -> ApiResult<Value> {
    let v = decode_kv(kv)?;
    Ok(match def.kind_id {
        Kind::EventV1 => crate::resources::event_v1::from_core(&v),
        Kind::HorizontalPodAutoscalerV1 => crate::resources::hpa::convert::to_v1(&v),
        _ => v,
    })
}

/// The stored bytes of an object of `def`.
pub fn encode_for(def: &ResourceDef, v: &Value) -> Vec<u8> {
    match def.kind_id {
        Kind::EventV1 => encode(&crate::resources::event_v1::to_core(v)),
        Kind::HorizontalPodAutoscalerV1 => encode(&crate::resources::hpa::convert::to_v2(v)),
        _ => encode(v),
    }
}

pub fn encode(v: &Value) -> Vec<u8> {
    let mut c = v.clone();
    if let Some(m) = c.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&c).unwrap_or_default()
}

fn meta_str<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get("metadata")
        .and_then(|m| m.get(k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn meta_mut(v: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    match &mut v["metadata"] {
        Value::Object(m) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// Parse a request body in JSON (or YAML), reporting duplicate keys.
pub fn parse_body(bytes: &[u8], content_type: &str) -> ApiResult<(Value, Vec<String>)> {
    let base = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if base == "application/vnd.kubernetes.protobuf" {
        let v = crate::protobuf::decode(bytes).map_err(|e| {
            let mut err = ApiError::unsupported_media_type(content_type);
            err.message = format!("decoding protobuf: {e}");
            err
        })?;
        return Ok((v, Vec::new()));
    }
    if base.contains("protobuf") || base.contains("cbor") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let first = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .copied()
        .unwrap_or(b'{');
    if base.contains("yaml") && first != b'{' && first != b'[' {
        let v: Value = serde_saphyr::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        return Ok((v, Vec::new()));
    }
    strict::parse_json_with_dups(bytes)
        .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))
}

/// Quantities may be written as JSON numbers (`cpu: 1` in YAML); the typed schema wants strings.
fn coerce_quantities(v: &mut Value, in_resource_list: bool) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if (in_resource_list || k == "sizeLimit")
                    && let Value::Number(n) = x
                {
                    *x = Value::String(n.to_string());
                    continue;
                }
                let list = matches!(
                    k.as_str(),
                    "limits"
                        | "requests"
                        | "capacity"
                        | "allocatable"
                        | "overhead"
                        | "allocatedResources"
                );
                coerce_quantities(x, list && !in_resource_list);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| coerce_quantities(x, false)),
        _ => {}
    }
}

/// Check and normalize an object for `def` with the requested field validation. Returns the normalized
/// object and warnings.
pub fn decode_object(
    def: &ResourceDef,
    mut value: Value,
    dups: &[String],
    fv: FieldValidation,
) -> ApiResult<(Value, Vec<String>)> {
    if !value.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body must be a {} object",
            def.kind
        )));
    }
    let api_version = def.api_version();
    match value.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
        _ => value["apiVersion"] = json!(api_version),
    }
    match value.get("kind").and_then(Value::as_str) {
        Some(k) if k != def.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
        _ => value["kind"] = json!(def.kind),
    }
    coerce_quantities(&mut value, false);
    let norm = def.normalize(&value).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            def.kind, def.version, def.kind
        ))
    })?;
    let mut problems: Vec<String> = Vec::new();
    for u in strict::unknown_fields(&value, &norm) {
        problems.push(format!("unknown field \"{u}\""));
    }
    for d in dups {
        problems.push(format!("duplicate field \"{d}\""));
    }
    match fv {
        FieldValidation::Strict if !problems.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            problems.join(", ")
        ))),
        FieldValidation::Warn => Ok((norm, problems)),
        _ => Ok((norm, Vec::new())),
    }
}

pub struct Api {
    pub store: Arc<dyn Store>,
    /// Where Service cluster IPs are allocated from.
    pub service_cidr: ipnet::Ipv4Net,
    /// The cluster DNS address (`--cluster-dns`): given only to a Service that asks for it.
    pub cluster_dns: Option<std::net::Ipv4Addr>,
    /// Where NodePort and LoadBalancer Services get their node ports (`--service-node-port-range`).
    pub node_port_range: crate::node_ports::PortRange,
    /// Namespaces (by uid) known to have their `default` ServiceAccount.
    sa_ensured: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The server's watch-fed copies of quotas and limit ranges for admission; without them (controllers,
    /// tests) admission reads the store.
    pub caches: Option<crate::prefix_cache::Caches>,
}

/// Options shared by the write verbs.
pub struct WriteOpts {
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    /// `fieldManager`: who owns the fields this write sets (managedFields).
    pub field_manager: Option<String>,
    /// Set for a create made by server-side apply: the manager's operation is `Apply`.
    pub apply: bool,
}

impl WriteOpts {
    pub fn from_query(q: &Query) -> ApiResult<Self> {
        let dry_run = match q.get("dryRun") {
            None | Some("") => false,
            Some("All") => true,
            Some(o) => {
                return Err(ApiError::bad_request(format!(
                    "dryRun: Unsupported value: {o:?}: supported values: \"All\""
                )));
            }
        };
        let field_validation =
            FieldValidation::parse(q.get("fieldValidation")).map_err(ApiError::bad_request)?;
        let field_manager = q.get("fieldManager").map(str::to_string);
        if let Some(m) = &field_manager
            && (m.len() > 128 || m.chars().any(|c| c.is_control()))
        {
            return Err(ApiError::invalid(
                "",
                "Options",
                "",
                &[FieldError::invalid(
                    "fieldManager",
                    &json!(m),
                    "must be at most 128 printable characters",
                )],
            ));
        }
        Ok(WriteOpts {
            dry_run,
            field_validation,
            field_manager,
            apply: false,
        })
    }

    /// The manager recorded for non-apply writes (kube-apiserver derives it from the user agent).
    pub fn manager(&self) -> &str {
        self.field_manager.as_deref().unwrap_or("unknown")
    }
}

enum Next {
    Update(Value),
    Delete,
    Unchanged,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub grace: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    /// `propagationPolicy` (or `orphanDependents`: `true` is `Orphan`, `false` is `Background`); `None`
    /// keeps what the object's finalizers say, else background (see `crate::controllers` garbage collector).
    pub propagation: Option<Propagation>,
}

/// What happens to the dependents of a deleted object (`DeleteOptions.propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// The owner gets the `orphan` finalizer; the garbage collector removes the owner's references from
    /// its dependents, then the finalizer.
    Orphan,
    /// The owner goes at once; the garbage collector deletes the dependents afterwards.
    Background,
    /// The owner gets the `foregroundDeletion` finalizer and stays until the garbage collector has deleted
    /// every dependent that blocks it (`blockOwnerDeletion: true`).
    Foreground,
}

/// The finalizer of an owner whose dependents are orphaned.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// The finalizer of an owner deleted in the foreground.
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

impl Propagation {
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Orphan => "Orphan",
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
        }
    }
}

impl DeleteOpts {
    pub fn from_request(q: &Query, body: &[u8]) -> ApiResult<Self> {
        let mut o = DeleteOpts::default();
        let mut policy: Option<String> = q.get("propagationPolicy").map(str::to_string);
        let mut orphan: Option<bool> = match q.get("orphanDependents") {
            None => None,
            Some("true" | "1") => Some(true),
            Some("false" | "0") => Some(false),
            Some(o) => {
                return Err(ApiError::bad_request(format!(
                    "invalid orphanDependents {o:?}"
                )));
            }
        };
        if !body.iter().all(u8::is_ascii_whitespace) {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
            o.grace = v.get("gracePeriodSeconds").and_then(Value::as_i64);
            o.uid = v
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string);
            o.resource_version = v
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
                policy = Some(p.to_string());
            }
            match v.get("orphanDependents") {
                None | Some(Value::Null) => {}
                Some(Value::Bool(b)) => orphan = Some(*b),
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "error decoding DeleteOptions: orphanDependents: expected a boolean, got {other}"
                    )));
                }
            }
        }
        if orphan.is_some() && policy.is_some() {
            return Err(ApiError::invalid(
                "",
                "DeleteOptions",
                "",
                &[FieldError::invalid(
                    "orphanDependents",
                    &Value::Bool(orphan.unwrap_or(true)),
                    "orphanDependents and deletionPropagation cannot be both set",
                )],
            ));
        }
        if let Some(g) = q.get("gracePeriodSeconds") {
            o.grace =
                Some(g.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}"))
                })?);
        }
        o.propagation = match policy.as_deref() {
            None => orphan.map(|o| {
                if o {
                    Propagation::Orphan
                } else {
                    Propagation::Background
                }
            }),
            Some("Orphan") => Some(Propagation::Orphan),
            Some("Background") => Some(Propagation::Background),
            Some("Foreground") => Some(Propagation::Foreground),
            Some(p) => {
                return Err(ApiError::invalid(
                    "",
                    "DeleteOptions",
                    "",
                    &[FieldError::not_supported(
                        "propagationPolicy",
                        &Value::String(p.to_string()),
                        &["Foreground", "Background", "Orphan", "nil"],
                    )],
                ));
            }
        };
        Ok(o)
    }
}

/// The policy of a DELETE that names none, for kinds whose default is not background: batch/v1 Jobs
/// keep their pods (kube keeps this for compatibility; kubectl always sends a policy).
fn default_propagation(kind: Kind) -> Option<Propagation> {
    (kind == Kind::Job).then_some(Propagation::Orphan)
}

/// The finalizers of an object being deleted with `propagation`: the garbage collector's (`orphan`,
/// `foregroundDeletion`) as the policy asks, or as the object already has them when no policy is given,
/// else as the kind's `default` (none: background); the others kept in order.
pub fn gc_finalizers(
    current: &[&str],
    propagation: Option<Propagation>,
    default: Option<Propagation>,
) -> Vec<String> {
    let from_finalizers = current.iter().find_map(|f| match *f {
        FINALIZER_ORPHAN => Some(Propagation::Orphan),
        FINALIZER_FOREGROUND => Some(Propagation::Foreground),
        _ => None,
    });
    let mut out: Vec<String> = current
        .iter()
        .filter(|f| **f != FINALIZER_ORPHAN && **f != FINALIZER_FOREGROUND)
        .map(|f| f.to_string())
        .collect();
    match propagation.or(from_finalizers).or(default) {
        Some(Propagation::Orphan) => out.push(FINALIZER_ORPHAN.into()),
        Some(Propagation::Foreground) => out.push(FINALIZER_FOREGROUND.into()),
        Some(Propagation::Background) | None => {}
    }
    out
}

const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let u = uuid::Uuid::new_v4();
    u.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

fn objects_equal_ignoring_rv(a: &Value, b: &Value) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    for v in [&mut a, &mut b] {
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        strict::strip_nulls(v);
    }
    a == b
}

impl Api {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Api {
            store,
            service_cidr: crate::service_ips::default_cidr(),
            cluster_dns: None,
            node_port_range: Default::default(),
            sa_ensured: Default::default(),
            caches: None,
        }
    }

    pub fn with_caches(mut self, caches: crate::prefix_cache::Caches) -> Self {
        self.caches = Some(caches);
        self
    }

    pub fn with_service_cidr(mut self, cidr: ipnet::Ipv4Net) -> Self {
        self.service_cidr = cidr;
        self
    }

    pub fn with_cluster_dns(mut self, ip: Option<std::net::Ipv4Addr>) -> Self {
        self.cluster_dns = ip;
        self
    }

    pub fn with_node_port_range(mut self, range: crate::node_ports::PortRange) -> Self {
        self.node_port_range = range;
        self
    }

    async fn namespace_check(&self, ns: &str) -> ApiResult<()> {
        let key = by_kind(Kind::Namespace).key(None, ns);
        let terminating = |v: &Value| {
            v.pointer("/metadata/deletionTimestamp")
                .is_some_and(|x| !x.is_null())
                || v.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
        };
        // An active namespace in the server's cache is enough (kube's NamespaceLifecycle reads its informer);
        // a missing or terminating one is confirmed against the store.
        let cached = self.caches.as_ref().and_then(|c| c.namespaces.get(&key));
        if cached.flatten().is_some_and(|p| !terminating(&p.value)) {
            return Ok(());
        }
        match self.store.get(&key).await? {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(kv) => {
                let v = decode_kv(&kv)?;
                if terminating(&v) {
                    Err(ApiError::forbidden(format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// POST: create an object. Returns the created object and warnings.
    pub async fn create(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        body: Value,
        dups: &[String],
        opts: &WriteOpts,
    ) -> ApiResult<(Value, Vec<String>)> {
        let (mut obj, warnings) = decode_object(def, body, dups, opts.field_validation)?;
        let mut sent = obj.clone();
        if let Some(m) = sent.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
        let meta = meta_mut(&mut obj);
        meta.remove("managedFields");
        if def.namespaced {
            let url_ns = ns.unwrap_or("default");
            match meta.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != url_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(url_ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty()
            && let Some(g) = meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|g| !g.is_empty())
        {
            let n = format!("{g}{}", random_suffix());
            meta.insert("name".into(), json!(n));
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(k);
        }
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        def.default_on_create(&mut obj);
        crate::apply::record_create(
            &mut obj,
            &sent,
            opts.manager(),
            if opts.apply { "Apply" } else { "Update" },
        );
        let errs = def.validate_create(&obj);
        if !errs.is_empty() {
            return Err(ApiError::invalid(def.group, def.kind, &name, &errs));
        }
        if def.namespaced {
            self.namespace_check(ns.unwrap_or("default")).await?;
        }
        if def.kind_id == Kind::Pod {
            crate::serviceaccount::admission::admit_pod(self, ns.unwrap_or("default"), &mut obj)
                .await?;
        }
        // DefaultStorageClass and StorageObjectInUseProtection.
        crate::resources::storage::admission::admit_create(self, def.kind_id, &mut obj).await?;
        // DefaultIngressClass.
        crate::resources::ingress::admission::admit_create(self, def.kind_id, &mut obj).await?;
        // LimitRanger: container defaults and the namespace's min / max / ratio limits.
        crate::resources::limitrange::admission::admit_create(self, def.kind_id, &mut obj).await?;
        // Priority: the pod's priority from its class; one global default class.
        match def.kind_id {
            Kind::Pod => {
                crate::resources::priorityclass::admission::admit_pod(self, &mut obj).await?
            }
            Kind::PriorityClass => {
                crate::resources::priorityclass::admission::admit_class(self, &obj).await?
            }
            _ => {}
        }
        // ResourceQuota, last: checks the object as it will be stored and charges the quotas.
        crate::resources::quota::admission::admit_create(self, def, &obj, opts.dry_run).await?;
        let key = def.key(ns.or(Some("default")), &name);
        if opts.dry_run {
            if self.store.get(&key).await?.is_some() {
                return Err(ApiError::already_exists(def.group, def.plural, &name));
            }
            return Ok((obj, warnings));
        }
        let allocated = self.allocate_cluster_ip(def, &mut obj, &key).await?;
        let written = async {
            let ports = self.allocate_node_ports(def, None, &mut obj, &key).await?;
            let created = self.store.create(&key, encode_for(def, &obj)).await;
            if created.is_err() {
                ports.revert(self.store.as_ref()).await;
            }
            created.map_err(|e| ApiError::from_store(e, def.group, def.plural, &name))
        };
        let rev = match written.await {
            Ok(rev) => rev,
            Err(e) => {
                if let Some(ip) = allocated {
                    crate::service_ips::release(self.store.as_ref(), &ip).await?;
                }
                return Err(e);
            }
        };
        set_rv(&mut obj, rev);
        if def.kind_id == Kind::Namespace {
            self.ensure_default_service_account(&name).await;
        }
        Ok((obj, warnings))
    }

    /// A new ClusterIP Service gets an address from the service CIDR (the requested one when given).
    async fn allocate_cluster_ip(
        &self,
        def: &ResourceDef,
        obj: &mut Value,
        owner: &str,
    ) -> ApiResult<Option<String>> {
        use crate::resources::service;
        if def.kind_id != Kind::Service || !service::needs_cluster_ip(obj) {
            return Ok(None);
        }
        let requested = service::requested_cluster_ip(obj);
        if requested.as_deref() == Some("None") {
            obj["spec"]["clusterIPs"] = json!(["None"]);
            return Ok(None);
        }
        let ip = crate::service_ips::allocate(
            self.store.as_ref(),
            self.service_cidr,
            self.cluster_dns,
            owner,
            requested.as_deref(),
        )
        .await?;
        obj["spec"]["clusterIP"] = json!(ip);
        obj["spec"]["clusterIPs"] = json!([ip]);
        Ok(Some(ip))
    }

    /// Node ports of a created (`old` is `None`) or updated Service, reserved for `owner` (its key).
    async fn allocate_node_ports(
        &self,
        def: &ResourceDef,
        old: Option<&Value>,
        new: &mut Value,
        owner: &str,
    ) -> ApiResult<crate::node_ports::Allocation> {
        if def.kind_id != Kind::Service {
            return Ok(Default::default());
        }
        let store = self.store.as_ref();
        crate::node_ports::allocate(store, self.node_port_range, owner, old, new).await
    }

    /// Everything the deleted Service `gone`, stored under `key`, held goes back to its range.
    async fn release_allocations(&self, def: &ResourceDef, key: &str, gone: &Value) {
        if def.kind_id != Kind::Service {
            return;
        }
        if let Some(ip) = gone.pointer("/spec/clusterIP").and_then(Value::as_str)
            && let Err(e) = crate::service_ips::release(self.store.as_ref(), ip).await
        {
            tracing::warn!(ip, "releasing a cluster IP: {e}");
        }
        crate::node_ports::release(self.store.as_ref(), key, gone).await;
    }

    /// Every namespace has a `default` ServiceAccount (what kube-controller-manager's serviceaccounts
    /// controller does). Failures are logged: the next finalizer pass retries.
    pub async fn ensure_default_service_account(&self, ns: &str) {
        let def = by_kind(Kind::ServiceAccount);
        let key = def.key(Some(ns), "default");
        match self.store.get(&key).await {
            Ok(Some(_)) => return,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("namespace {ns}: reading the default serviceaccount: {e}");
                return;
            }
        }
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
            "name": "default", "namespace": ns, "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": now_rfc3339()}});
        match self.store.create(&key, encode(&sa)).await {
            Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => tracing::warn!("namespace {ns}: creating the default serviceaccount: {e}"),
        }
    }

    pub async fn get(&self, def: &ResourceDef, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        match self.store.get(&def.key(ns, name)).await? {
            Some(kv) => decode_for(def, &kv),
            None => Err(ApiError::not_found(def.group, def.plural, name)),
        }
    }

    /// List objects matching the selectors; returns the items and the list revision.
    pub async fn list(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> ApiResult<(Vec<Value>, i64)> {
        let (kvs, rev) = self.store.list(&def.prefix(ns)).await?;
        let mut items = Vec::new();
        for kv in &kvs {
            let v = decode_for(def, kv)?;
            if matches(def, &v, labels, fields) {
                items.push(v);
            }
        }
        Ok((items, rev))
    }

    /// The read-modify-write loop shared by update, patch, delete and binding.
    async fn modify<F>(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        dry_run: bool,
        mut f: F,
    ) -> ApiResult<Value>
    where
        F: FnMut(&Value) -> ApiResult<Next>,
    {
        let key = def.key(ns, name);
        for _ in 0..16 {
            let Some(kv) = self.store.get(&key).await? else {
                return Err(ApiError::not_found(def.group, def.plural, name));
            };
            let cur = decode_for(def, &kv)?;
            match f(&cur)? {
                Next::Unchanged => return Ok(cur),
                Next::Update(mut new) => {
                    if def.kind_id == Kind::PersistentVolumeClaim {
                        // PersistentVolumeClaimResize: the class must allow a larger request.
                        crate::resources::storage::admission::admit_update(self, &cur, &new)
                            .await?;
                    }
                    if def.kind_id == Kind::PriorityClass {
                        crate::resources::priorityclass::admission::admit_class(self, &new).await?;
                    }
                    if dry_run {
                        set_rv(&mut new, kv.mod_revision);
                        return Ok(new);
                    }
                    let ports = self
                        .allocate_node_ports(def, Some(&cur), &mut new, &key)
                        .await?;
                    let store = self.store.as_ref();
                    match store
                        .update(&key, encode_for(def, &new), kv.mod_revision)
                        .await
                    {
                        Ok(rev) => {
                            ports.commit(store).await;
                            set_rv(&mut new, rev);
                            return Ok(new);
                        }
                        Err(StoreError::Conflict { .. }) => ports.revert(store).await,
                        Err(e) => {
                            ports.revert(store).await;
                            return Err(ApiError::from_store(e, def.group, def.plural, name));
                        }
                    }
                }
                Next::Delete => {
                    if dry_run {
                        return Ok(cur);
                    }
                    match self.store.delete(&key, Some(kv.mod_revision)).await {
                        Ok((_, rev)) => {
                            self.release_allocations(def, &key, &cur).await;
                            let mut gone = cur;
                            set_rv(&mut gone, rev);
                            return Ok(gone);
                        }
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => return Err(ApiError::from_store(e, def.group, def.plural, name)),
                    }
                }
            }
        }
        Err(ApiError::modified(def.group, def.plural, name))
    }

    /// Merge a proposed new object (`body`, already normalized) onto `cur` for PUT/PATCH of the main resource
    /// or the status subresource.
    fn prepare_update(
        def: &ResourceDef,
        cur: &Value,
        body: &Value,
        sub: Option<&str>,
    ) -> ApiResult<Next> {
        let name = meta_str(cur, "name").to_string();
        let body_rv = meta_str(body, "resourceVersion");
        if !body_rv.is_empty() && body_rv != meta_str(cur, "resourceVersion") {
            return Err(ApiError::modified(def.group, def.plural, &name));
        }
        let bname = meta_str(body, "name");
        if !bname.is_empty() && bname != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({bname}) does not match the name on the URL ({name})"
            )));
        }
        let bns = meta_str(body, "namespace");
        if def.namespaced && !bns.is_empty() && bns != meta_str(cur, "namespace") {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if sub == Some("ephemeralcontainers") {
            // Only the list of ephemeral containers comes from the body (with the defaults of containers).
            let mut n = cur.clone();
            let mut eph = body
                .pointer("/spec/ephemeralContainers")
                .cloned()
                .unwrap_or(Value::Null);
            for c in eph.as_array_mut().into_iter().flatten() {
                crate::resources::pod::default_container(c);
            }
            match n.get_mut("spec").and_then(Value::as_object_mut) {
                Some(spec) if eph.is_array() => {
                    spec.insert("ephemeralContainers".into(), eph);
                }
                Some(spec) => {
                    spec.remove("ephemeralContainers");
                }
                None => {}
            }
            let errs = crate::resources::pod::validate_ephemeral_update(cur, &n);
            if !errs.is_empty() {
                return Err(ApiError::invalid(def.group, def.kind, &name, &errs));
            }
            if objects_equal_ignoring_rv(cur, &n) {
                return Ok(Next::Unchanged);
            }
            return Ok(Next::Update(n));
        }
        let mut new = if sub == Some("status") {
            def.status_update(cur, body)
        } else {
            let mut n = body.clone();
            n["apiVersion"] = json!(def.api_version());
            n["kind"] = json!(def.kind);
            if def.has_status {
                match cur.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            if def.kind_id == Kind::Pod {
                crate::resources::pod::apply_defaults(&mut n, false);
            }
            if def.kind_id == Kind::Namespace {
                n["spec"] = cur.get("spec").cloned().unwrap_or(json!({}));
            }
            def.default_on_update(cur, &mut n);
            let cm = cur.get("metadata").cloned().unwrap_or(json!({}));
            let m = meta_mut(&mut n);
            for k in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match cm.get(k) {
                    Some(v) => {
                        m.insert(k.into(), v.clone());
                    }
                    None => {
                        m.remove(k);
                    }
                }
            }
            // Finalizers may be removed from a terminating object, but none added.
            if def.bumps_generation(cur, &n) {
                let g = cm.get("generation").and_then(Value::as_i64).unwrap_or(1);
                meta_mut(&mut n).insert("generation".into(), json!(g.saturating_add(1)));
            }
            n
        };
        meta_mut(&mut new).insert(
            "resourceVersion".into(),
            json!(meta_str(cur, "resourceVersion")),
        );
        let errs = def.validate_update(cur, &new);
        if !errs.is_empty() {
            return Err(ApiError::invalid(def.group, def.kind, &name, &errs));
        }
        if objects_equal_ignoring_rv(cur, &new) {
            return Ok(Next::Unchanged);
        }
        let terminating = new
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null());
        let no_finalizers = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let grace = new
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if def.kind_id != Kind::Namespace && terminating && no_finalizers && grace == 0 {
            return Ok(Next::Delete);
        }
        Ok(Next::Update(new))
    }

    /// PUT of the object or its status.
    #[allow(clippy::too_many_arguments)]
    pub async fn update(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        sub: Option<&str>,
        body: Value,
        dups: &[String],
        opts: &WriteOpts,
    ) -> ApiResult<(Value, bool, Vec<String>)> {
        // Leases and events may be created by PUT (AllowCreateOnUpdate), like kube-apiserver does.
        if sub.is_none()
            && matches!(def.kind_id, Kind::Lease | Kind::Event | Kind::EventV1)
            && self.store.get(&def.key(ns, name)).await?.is_none()
        {
            let bname = body
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if bname != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({bname}) does not match the name on the URL ({name})"
                )));
            }
            let mut body = body;
            if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            let (obj, w) = self.create(def, ns, body, dups, opts).await?;
            return Ok((obj, true, w));
        }
        let (obj, warnings) = decode_object(def, body, dups, opts.field_validation)?;
        let out = self
            .modify(def, ns, name, opts.dry_run, |cur| {
                Self::prepare_update(def, cur, &obj, sub)
                    .map(|n| track_update(n, cur, sub, opts.manager()))
            })
            .await?;
        Ok((out, false, warnings))
    }

    /// PATCH of the object or its status. Returns (object, created, warnings).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        sub: Option<&str>,
        pt: PatchType,
        patch_body: Value,
        dups: &[String],
        opts: &WriteOpts,
        force: bool,
    ) -> ApiResult<(Value, bool, Vec<String>)> {
        let ssa = pt == PatchType::Apply && sub.is_none();
        if ssa && opts.field_manager.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                &[FieldError::required(
                    "fieldManager",
                    "is required for apply patch",
                )],
            ));
        }
        if ssa && self.store.get(&def.key(ns, name)).await?.is_none() {
            let mut body = patch_body.clone();
            if body.is_object() {
                meta_mut(&mut body).insert("name".into(), json!(name));
            }
            let create_opts = WriteOpts {
                dry_run: opts.dry_run,
                field_validation: opts.field_validation,
                field_manager: opts.field_manager.clone(),
                apply: true,
            };
            let (obj, w) = self.create(def, ns, body, dups, &create_opts).await?;
            return Ok((obj, true, w));
        }
        let mut warnings = Vec::new();
        let out = self
            .modify(def, ns, name, opts.dry_run, |cur| {
                let mut target = cur.clone();
                let mut p = patch_body.clone();
                if pt == PatchType::Apply {
                    if let Some(m) = p.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("managedFields");
                    }
                    if ssa {
                        if !p.is_object() {
                            return Err(ApiError::bad_request(
                                "an apply configuration must be an object",
                            ));
                        }
                        let applied = crate::apply::apply(cur, &p, opts.manager(), force)?;
                        let (norm, w) = decode_object(def, applied, dups, opts.field_validation)?;
                        warnings = w;
                        return match Self::prepare_update(def, cur, &norm, sub)? {
                            // Same object, new co-owner: record the ownership.
                            Next::Unchanged if !crate::apply::same_ownership(cur, &norm) => {
                                let mut n = cur.clone();
                                if let Some(mf) = norm.pointer("/metadata/managedFields") {
                                    meta_mut(&mut n).insert("managedFields".into(), mf.clone());
                                }
                                Ok(Next::Update(n))
                            }
                            other => Ok(other),
                        };
                    }
                }
                let type_name = patch::meta::type_name(def.group, def.version, def.kind);
                let schema = patch::Schema::Type(&type_name);
                patch::apply(pt, &mut target, &p, schema).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    )
                })?;
                let (norm, w) = decode_object(def, target, dups, opts.field_validation)?;
                warnings = w;
                Self::prepare_update(def, cur, &norm, sub)
                    .map(|n| track_update(n, cur, sub, opts.manager()))
            })
            .await?;
        Ok((out, false, warnings))
    }

    /// DELETE with graceful deletion and finalizers.
    pub async fn delete(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOpts,
        dry_run: bool,
    ) -> ApiResult<Value> {
        if def.kind_id == Kind::Namespace && PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        if def.kind_id == Kind::PriorityClass {
            crate::resources::priorityclass::admission::check_delete(name)?;
        }
        self.modify(def, ns, name, dry_run, |cur| {
            Self::delete_step(def, cur, opts)
        })
        .await
    }

    fn delete_step(def: &ResourceDef, cur: &Value, opts: &DeleteOpts) -> ApiResult<Next> {
        let name = meta_str(cur, "name");
        if let Some(uid) = &opts.uid
            && uid != meta_str(cur, "uid")
        {
            return Err(ApiError::conflict(
                def.group,
                def.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(cur, "uid")
                ),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && rv != meta_str(cur, "resourceVersion")
        {
            return Err(ApiError::conflict(
                def.group,
                def.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(cur, "resourceVersion")
                ),
            ));
        }
        let terminating = cur
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null());
        if def.kind_id == Kind::Namespace {
            if terminating {
                return Ok(Next::Unchanged);
            }
            let mut n = cur.clone();
            meta_mut(&mut n).insert("deletionTimestamp".into(), json!(now_rfc3339()));
            meta_mut(&mut n).insert("deletionGracePeriodSeconds".into(), json!(0));
            n["status"] = json!({"phase": "Terminating"});
            return Ok(Next::Update(n));
        }
        let finalizers: Vec<&str> = cur
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // The garbage collector's finalizers as the propagation policy asks (kube's registry does this
        // on every delete that is not a pending graceful one).
        let wanted = gc_finalizers(
            &finalizers,
            opts.propagation,
            default_propagation(def.kind_id),
        );
        let finalizers_change = {
            let mut a = finalizers.clone();
            let mut b: Vec<&str> = wanted.iter().map(String::as_str).collect();
            a.sort_unstable();
            a.dedup();
            b.sort_unstable();
            b.dedup();
            a != b
        };
        let has_finalizers = !wanted.is_empty();
        let mut grace = opts.grace.unwrap_or(0).max(0);
        let mut graceful = false;
        if def.kind_id == Kind::Pod {
            let bound = !cur
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty();
            let phase = cur
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("");
            let terminal = phase == "Succeeded" || phase == "Failed";
            if opts.grace.is_none() {
                grace = cur
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(30)
                    .max(0);
            }
            graceful = bound && !terminal && grace > 0;
        }
        let existing_grace = cur
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        // Terminating without a grace period (held by finalizers): no graceful deletion any more.
        if terminating && existing_grace.is_none_or(|e| e == 0) {
            graceful = false;
        }
        if graceful {
            if terminating && existing_grace.is_some_and(|e| grace >= e) {
                return Ok(Next::Unchanged);
            }
            let mut n = cur.clone();
            let m = meta_mut(&mut n);
            m.insert("deletionTimestamp".into(), json!(rfc3339_after(grace)));
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            if finalizers_change {
                m.insert("finalizers".into(), json!(wanted));
            }
            return Ok(Next::Update(n));
        }
        if has_finalizers {
            let mut n = cur.clone();
            let m = meta_mut(&mut n);
            if finalizers_change {
                m.insert("finalizers".into(), json!(wanted));
            }
            if !terminating {
                m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
                if let Some(g) = m.get("generation").and_then(Value::as_i64)
                    && g > 0
                {
                    m.insert("generation".into(), json!(g.saturating_add(1)));
                }
            }
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            if objects_equal_ignoring_rv(cur, &n) {
                return Ok(Next::Unchanged);
            }
            return Ok(Next::Update(n));
        }
        Ok(Next::Delete)
    }

    /// POST pods/<name>/binding.
    pub async fn bind(&self, ns: &str, name: &str, body: &Value, dry_run: bool) -> ApiResult<()> {
        let def = by_kind(Kind::Pod);
        let target = body
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if target.is_empty() {
            return Err(ApiError::invalid(
                "",
                "Binding",
                name,
                &[FieldError::required("target.name", "")],
            ));
        }
        if let Some(k) = body.pointer("/target/kind").and_then(Value::as_str)
            && !k.is_empty()
            && k != "Node"
        {
            return Err(ApiError::invalid(
                "",
                "Binding",
                name,
                &[FieldError::not_supported(
                    "target.kind",
                    &json!(k),
                    &["Node", "<empty>"],
                )],
            ));
        }
        self.modify(def, Some(ns), name, dry_run, |cur| {
            let node = cur.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
            if !node.is_empty() {
                return Err(ApiError::conflict("", "pods/binding", name, &format!("pod {name} is already assigned to node {node:?}")));
            }
            if cur.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null()) {
                return Err(ApiError::conflict("", "pods/binding", name, "pod is being deleted, cannot be assigned to a host"));
            }
            let mut n = cur.clone();
            n["spec"]["nodeName"] = json!(target);
            if let Some(ann) = body.pointer("/metadata/annotations").and_then(Value::as_object) {
                let m = meta_mut(&mut n);
                let a = m.entry("annotations").or_insert(json!({}));
                for (k, v) in ann {
                    a[k] = v.clone();
                }
            }
            if !n.get("status").is_some_and(Value::is_object) {
                n["status"] = json!({});
            }
            let mut conds = n.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
            conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
            conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()}));
            n["status"]["conditions"] = Value::Array(conds);
            Ok(Next::Update(n))
        })
        .await?;
        Ok(())
    }

    /// Namespace finalization and (with `pod_gc`) cleanup of terminating pods on missing nodes: one pass.
    pub async fn finalize_pass(&self, pod_gc: bool) -> ApiResult<()> {
        let ns_def = by_kind(Kind::Namespace);
        let (namespaces, _) = self
            .list(
                ns_def,
                None,
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .await?;
        for ns in namespaces {
            if ns
                .pointer("/metadata/deletionTimestamp")
                .is_none_or(Value::is_null)
            {
                let uid = meta_str(&ns, "uid").to_string();
                let known = self
                    .sa_ensured
                    .lock()
                    .map(|s| s.contains(&uid))
                    .unwrap_or(false);
                if !known {
                    self.ensure_default_service_account(meta_str(&ns, "name"))
                        .await;
                    if let Ok(mut s) = self.sa_ensured.lock() {
                        s.insert(uid);
                    }
                }
                continue;
            }
            let name = meta_str(&ns, "name").to_string();
            let mut remaining = 0usize;
            for def in crate::resources::RESOURCES.iter().filter(|d| d.namespaced) {
                let (items, _) = self
                    .list(
                        def,
                        Some(&name),
                        &LabelSelector::default(),
                        &FieldSelector::default(),
                    )
                    .await?;
                for it in items {
                    remaining += 1;
                    if it
                        .pointer("/metadata/deletionTimestamp")
                        .is_some_and(|v| !v.is_null())
                    {
                        continue;
                    }
                    let n = meta_str(&it, "name").to_string();
                    // As kube's namespace controller: dependents go in the background.
                    let opts = DeleteOpts {
                        propagation: Some(Propagation::Background),
                        ..DeleteOpts::default()
                    };
                    match self.delete(def, Some(&name), &n, &opts, false).await {
                        Ok(_) | Err(ApiError { code: 404, .. }) => {}
                        Err(e) => {
                            tracing::warn!("namespace {name}: deleting {} {n}: {e}", def.plural)
                        }
                    }
                }
            }
            if remaining == 0
                && let Some(kv) = self.store.get(&ns_def.key(None, &name)).await?
            {
                match self.store.delete(&kv.key, Some(kv.mod_revision)).await {
                    Ok(_) | Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if !pod_gc {
            return Ok(());
        }
        // Terminating pods bound to nodes that do not exist: nothing will ever finish them.
        let pod_def = by_kind(Kind::Pod);
        let node_def = by_kind(Kind::Node);
        let (pods, _) = self
            .list(
                pod_def,
                None,
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .await?;
        for p in pods {
            if p.pointer("/metadata/deletionTimestamp")
                .is_none_or(Value::is_null)
            {
                continue;
            }
            let node = p
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if node.is_empty() {
                continue;
            }
            // As kube's pod GC: the node is gone, or it is not Ready and an admin marked it
            // `node.kubernetes.io/out-of-service` (its workloads may move: nothing runs there any more).
            let node_kv = self.store.get(&node_def.key(None, node)).await?;
            if let Some(kv) = &node_kv
                && !out_of_service(&kv.value)
            {
                continue;
            }
            let opts = DeleteOpts {
                grace: Some(0),
                uid: Some(meta_str(&p, "uid").to_string()),
                ..DeleteOpts::default()
            };
            if node_kv.is_none() {
                // kube's orphaned-pod GC: an unfinished pod turns Failed with DisruptionTarget first.
                let why = crate::eviction::Disruption {
                    manager: "PodGC",
                    reason: "DeletionByPodGC",
                    message: "PodGC: node no longer exists",
                    fail: true,
                };
                let ns = meta_str(&p, "namespace");
                let _ = crate::eviction::add_disruption_target(
                    self,
                    ns,
                    meta_str(&p, "name"),
                    &opts,
                    &why,
                )
                .await;
            }
            let _ = self
                .delete(
                    pod_def,
                    Some(meta_str(&p, "namespace")),
                    meta_str(&p, "name"),
                    &opts,
                    false,
                )
                .await;
        }
        Ok(())
    }
}

/// A stored Node that is not Ready and carries the `node.kubernetes.io/out-of-service` taint.
fn out_of_service(node: &[u8]) -> bool {
    let Ok(node) = serde_json::from_slice::<Value>(node) else {
        return false;
    };
    let tainted = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .is_some_and(|t| {
            t.iter().any(|t| {
                t.get("key").and_then(Value::as_str) == Some("node.kubernetes.io/out-of-service")
            })
        });
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True");
    tainted && !ready
}

/// managedFields of a main-resource update: the manager owns what it changed.
fn track_update(next: Next, cur: &Value, sub: Option<&str>, manager: &str) -> Next {
    match next {
        Next::Update(mut n) if sub.is_none() => {
            crate::apply::record_update(Some(cur), &mut n, manager);
            Next::Update(n)
        }
        other => other,
    }
}

pub fn matches(
    def: &ResourceDef,
    obj: &Value,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> bool {
    labels.matches_object(obj) && fields.matches(|f| def.field_value(obj, f))
}

/// A list object (`PodList`, …) of `items`.
pub fn list_object(def: &ResourceDef, items: Vec<Value>, rev: i64) -> Value {
    json!({
        "kind": def.list_kind(),
        "apiVersion": def.api_version(),
        "metadata": {"resourceVersion": rev.to_string()},
        "items": items,
    })
}

/// What representation the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr {
    Object,
    Table,
    PartialMetadata,
}

pub fn repr_from_accept(accept: &str) -> Repr {
    for part in accept.split(',') {
        let p = part.replace(' ', "");
        let has = |s: &str| p.split(';').any(|x| x == s);
        if has("as=Table") && has("g=meta.k8s.io") && (has("v=v1") || has("v=v1beta1")) {
            return Repr::Table;
        }
        if (has("as=PartialObjectMetadata") || has("as=PartialObjectMetadataList"))
            && has("g=meta.k8s.io")
        {
            return Repr::PartialMetadata;
        }
        if p.starts_with("application/json")
            || p.starts_with("*/*")
            || p.contains("protobuf")
            || p.contains("yaml")
        {
            return Repr::Object;
        }
    }
    Repr::Object
}

/// Render one object in the requested representation.
pub fn render_one(def: &ResourceDef, obj: &Value, repr: Repr, q: &Query) -> Value {
    match repr {
        Repr::Object => obj.clone(),
        Repr::Table => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            table::table(
                def,
                std::slice::from_ref(obj),
                rv,
                q.get("includeObject").unwrap_or("Metadata"),
                true,
            )
        }
        Repr::PartialMetadata => table::partial_metadata(obj),
    }
}

pub fn render_list(def: &ResourceDef, items: Vec<Value>, rev: i64, repr: Repr, q: &Query) -> Value {
    match repr {
        Repr::Object => list_object(def, items, rev),
        Repr::Table => table::table(
            def,
            &items,
            Some(rev.to_string()),
            q.get("includeObject").unwrap_or("Metadata"),
            true,
        ),
        Repr::PartialMetadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": rev.to_string()},
            "items": items.iter().map(table::partial_metadata).collect::<Vec<_>>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find_resource;

    #[test]
    fn strict_decoding_rejects_unknown_fields() {
        let def = find_resource("", "pods").expect("pods");
        let body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"foo": 1, "containers": [{"name": "c", "image": "x"}]}});
        let e = decode_object(def, body.clone(), &[], FieldValidation::Strict).expect_err("strict");
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "strict decoding error: unknown field \"spec.foo\""
        );
        let (v, w) = decode_object(def, body.clone(), &[], FieldValidation::Warn).expect("warn");
        assert_eq!(w, vec!["unknown field \"spec.foo\"".to_string()]);
        assert!(v["spec"].get("foo").is_none());
        let (_, w) = decode_object(
            def,
            body,
            &["metadata.name".into()],
            FieldValidation::Ignore,
        )
        .expect("ignore");
        assert!(w.is_empty());
        let e = decode_object(
            def,
            json!({"kind": "Pod", "metadata": {}}),
            &["metadata.name".into()],
            FieldValidation::Strict,
        )
        .expect_err("dup");
        assert!(e.message.contains("duplicate field \"metadata.name\""));
        let e = decode_object(def, json!({"kind": "Node"}), &[], FieldValidation::Strict)
            .expect_err("kind");
        assert_eq!(e.code, 400);
        let e = decode_object(
            def,
            json!({"spec": {"containers": "x"}}),
            &[],
            FieldValidation::Strict,
        )
        .expect_err("type");
        assert!(e.message.contains("cannot be handled as a Pod"));
    }

    #[test]
    fn numeric_quantities_become_strings() {
        let def = find_resource("", "pods").expect("pods");
        let body = json!({"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c", "image": "x",
            "resources": {"limits": {"cpu": 1, "memory": "1Gi"}, "requests": {"cpu": 0.5}}}],
            "volumes": [{"name": "v", "emptyDir": {"sizeLimit": 1000}}]}});
        let (v, _) = decode_object(def, body, &[], FieldValidation::Strict).expect("decode");
        assert_eq!(
            v["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "1"
        );
        assert_eq!(
            v["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "0.5"
        );
        assert_eq!(v["spec"]["volumes"][0]["emptyDir"]["sizeLimit"], "1000");
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(
            repr_from_accept(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            ),
            Repr::Table
        );
        assert_eq!(repr_from_accept("application/json"), Repr::Object);
        assert_eq!(
            repr_from_accept("application/vnd.kubernetes.protobuf,application/json"),
            Repr::Object
        );
        assert_eq!(
            repr_from_accept("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
            Repr::PartialMetadata
        );
    }

    #[test]
    fn query_parse() {
        let q = Query::parse(Some(
            "fieldSelector=involvedObject.name%3Dweb%2Creason%3DX&watch=true&limit=500",
        ));
        assert_eq!(
            q.get("fieldSelector"),
            Some("involvedObject.name=web,reason=X")
        );
        assert!(q.flag("watch"));
        assert_eq!(q.get("nope"), None);
    }
}
