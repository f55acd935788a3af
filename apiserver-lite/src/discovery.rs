//! API discovery (`/api`, `/apis`, aggregated v2 and legacy), `/version` and `/openapi/v3`.

use std::sync::OnceLock;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::resources::{RESOURCES, ResourceDef};

mod schemas;

pub const GIT_VERSION: &str = "v1.32.0-skiff";
pub const AGGREGATED_CT: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
pub const AGGREGATED_CT_BETA: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Which aggregated discovery version the Accept header asks for (first match wins).
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    for part in accept.split(',') {
        let p = part.replace(' ', "");
        let has = |s: &str| p.split(';').any(|x| x == s);
        if has("as=APIGroupDiscoveryList") && has("g=apidiscovery.k8s.io") {
            if has("v=v2") {
                return Some(AGGREGATED_CT);
            }
            if has("v=v2beta1") {
                return Some(AGGREGATED_CT_BETA);
            }
        }
        if p.starts_with("application/json") || p.starts_with("*/*") {
            return None;
        }
    }
    None
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// Create-only review resources: answered at once, never stored (not in `RESOURCES`).
pub struct Review {
    pub group: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
}

pub const REVIEWS: &[Review] = &[
    Review {
        group: "authorization.k8s.io",
        plural: "selfsubjectaccessreviews",
        kind: "SelfSubjectAccessReview",
        namespaced: false,
    },
    Review {
        group: "authorization.k8s.io",
        plural: "selfsubjectrulesreviews",
        kind: "SelfSubjectRulesReview",
        namespaced: false,
    },
    Review {
        group: "authorization.k8s.io",
        plural: "subjectaccessreviews",
        kind: "SubjectAccessReview",
        namespaced: false,
    },
    Review {
        group: "authorization.k8s.io",
        plural: "localsubjectaccessreviews",
        kind: "LocalSubjectAccessReview",
        namespaced: true,
    },
    Review {
        group: "authentication.k8s.io",
        plural: "selfsubjectreviews",
        kind: "SelfSubjectReview",
        namespaced: false,
    },
    Review {
        group: "authentication.k8s.io",
        plural: "tokenreviews",
        kind: "TokenReview",
        namespaced: false,
    },
];

fn groups() -> Vec<&'static str> {
    let mut g: Vec<&str> = Vec::new();
    for group in RESOURCES
        .iter()
        .map(|r| r.group)
        .chain(REVIEWS.iter().map(|r| r.group))
    {
        if !group.is_empty() && !g.contains(&group) {
            g.push(group);
        }
    }
    g
}

/// The versions served of a group, the preferred (the first in `RESOURCES`) first; reviews are all v1.
pub fn versions(group: &str) -> Vec<&'static str> {
    let mut vs: Vec<&'static str> = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group) {
        if !vs.contains(&r.version) {
            vs.push(r.version);
        }
    }
    if vs.is_empty() && REVIEWS.iter().any(|r| r.group == group) {
        vs.push("v1");
    }
    vs
}

fn aggregated_review(r: &Review) -> Value {
    json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": "v1", "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.kind.to_ascii_lowercase(),
        "verbs": ["create"],
    })
}

fn legacy_review(r: &Review) -> Value {
    json!({
        "name": r.plural,
        "singularName": r.kind.to_ascii_lowercase(),
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": ["create"],
    })
}

fn sub_verbs(sub: &str) -> Vec<&'static str> {
    match sub {
        "binding" | "eviction" | "token" => vec!["create"],
        "log" => vec!["get"],
        "exec" | "attach" | "portforward" => vec!["create", "get"],
        _ => vec!["get", "patch", "update"],
    }
}

fn sub_kind(r: &ResourceDef, sub: &str) -> Value {
    match sub {
        "binding" => json!({"group": "", "version": "v1", "kind": "Binding"}),
        "eviction" => json!({"group": "policy", "version": "v1", "kind": "Eviction"}),
        "token" => {
            json!({"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"})
        }
        "exec" => json!({"group": "", "version": "v1", "kind": "PodExecOptions"}),
        "attach" => json!({"group": "", "version": "v1", "kind": "PodAttachOptions"}),
        "portforward" => json!({"group": "", "version": "v1", "kind": "PodPortForwardOptions"}),
        "scale" => json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
        _ => json!({"group": r.group, "version": r.version, "kind": r.kind}),
    }
}

fn aggregated_resource(r: &ResourceDef) -> Value {
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        v["subresources"] = Value::Array(
            r.subresources
                .iter()
                .map(|s| json!({"subresource": s, "responseKind": sub_kind(r, s), "verbs": sub_verbs(s)}))
                .collect(),
        );
    }
    v
}

fn aggregated_group(group: &str) -> Value {
    let versions: Vec<Value> = versions(group)
        .into_iter()
        .map(|version| {
            let resources: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| r.group == group && r.version == version)
                .map(aggregated_resource)
                .chain(
                    REVIEWS
                        .iter()
                        .filter(|r| r.group == group && version == "v1")
                        .map(aggregated_review),
                )
                .collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let mut meta = json!({"creationTimestamp": null});
    if !group.is_empty() {
        meta["name"] = json!(group);
    }
    json!({"metadata": meta, "versions": versions})
}

/// `/api` (core) or `/apis` (named groups) in aggregated form.
pub fn aggregated(core: bool, content_type: &str) -> Value {
    let api_version = if content_type == AGGREGATED_CT_BETA {
        "apidiscovery.k8s.io/v2beta1"
    } else {
        "apidiscovery.k8s.io/v2"
    };
    let items: Vec<Value> = if core {
        vec![aggregated_group("")]
    } else {
        let mut items: Vec<Value> = groups().into_iter().map(aggregated_group).collect();
        items.push(crate::metrics::api::aggregated_group());
        items
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(g: &str) -> Value {
    let versions: Vec<Value> = versions(g)
        .into_iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": g,
        "versions": versions,
        "preferredVersion": preferred,
    })
}

pub fn api_group_list() -> Value {
    let gs: Vec<Value> = groups()
        .into_iter()
        .map(api_group)
        .chain([crate::metrics::api::api_group()])
        .map(|mut v| {
            if let Some(m) = v.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            v
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

pub fn group(g: &str) -> Option<Value> {
    groups().contains(&g).then(|| api_group(g))
}

/// `/api/v1` or `/apis/<group>/<version>`: the legacy APIResourceList.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if (!group.is_empty() && !groups().contains(&group)) || !versions(group).contains(&version) {
        return None;
    }
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut v = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            v["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            v["categories"] = json!(r.categories);
        }
        resources.push(v);
        for s in r.subresources {
            let k = sub_kind(r, s);
            resources.push(json!({
                "name": format!("{}/{s}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": k["group"],
                "version": k["version"],
                "kind": k["kind"],
                "verbs": sub_verbs(s),
            }));
        }
    }
    resources.extend(
        REVIEWS
            .iter()
            .filter(|r| r.group == group && version == "v1")
            .map(legacy_review),
    );
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

// ---- OpenAPI v3 ----

/// The openapi path key (`api/v1`, `apis/<group>/<version>`) of a group-version.
fn openapi_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn op_params(with_validation: bool) -> Value {
    let mut ps = vec![
        json!({"name": "dryRun", "in": "query", "description": "When present, indicates that modifications should not be persisted.", "schema": {"type": "string", "uniqueItems": true}}),
        json!({"name": "fieldManager", "in": "query", "description": "fieldManager is a name associated with the actor or entity that is making these changes.", "schema": {"type": "string", "uniqueItems": true}}),
    ];
    if with_validation {
        ps.push(json!({"name": "fieldValidation", "in": "query", "description": "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict.", "schema": {"type": "string", "uniqueItems": true}}));
    }
    Value::Array(ps)
}

/// The OpenAPI v3 document of one group-version: per kind, the operations with
/// `x-kubernetes-group-version-kind` and the `fieldValidation` parameter kubectl looks for, and the
/// kinds' schemas (what `kubectl explain` shows).
pub fn openapi_group_doc(group: &str, version: &str) -> Value {
    let mut doc = openapi_paths_doc(group, version);
    doc["components"] = json!({"schemas": schemas::components(group, version)});
    doc
}

/// [`openapi_group_doc`] without the schemas: cheap to build, and it changes whenever the operations do.
fn openapi_paths_doc(group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let base = format!("/{}", openapi_key(group, version));
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let ok = json!({"200": {"description": "OK"}});
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let coll = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        let op = |action: &str, verb: &str| {
            json!({
                "tags": [openapi_tag(group, version)],
                "operationId": format!("{verb}{}", r.kind),
                "parameters": op_params(verb != "read"),
                "responses": ok,
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        let mut patch = op("patch", "patch");
        let patch_body = json!({"content": {
            "application/apply-patch+yaml": {}, "application/json-patch+json": {},
            "application/merge-patch+json": {}, "application/strategic-merge-patch+json": {}
        }, "required": true});
        patch["requestBody"] = patch_body.clone();
        paths.insert(item.clone(), json!({"get": op("get", "read"), "put": op("put", "replace"), "patch": patch, "delete": op("delete", "delete")}));
        paths.insert(
            coll,
            json!({"get": op("list", "list"), "post": op("post", "create")}),
        );
        if r.subresources.contains(&"status") {
            let mut sp = op("patch", "patchStatus");
            sp["operationId"] = json!(format!("patch{}Status", r.kind));
            paths.insert(format!("{item}/status"), json!({"patch": sp}));
        }
        if r.subresources.contains(&"scale") {
            let scale_gvk = json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
            let sop = |action: &str, verb: &str| {
                let mut o = op(action, verb);
                o["operationId"] = json!(format!("{verb}{}Scale", r.kind));
                o["x-kubernetes-group-version-kind"] = scale_gvk.clone();
                o
            };
            let mut sp = sop("patch", "patch");
            sp["requestBody"] = patch_body.clone();
            paths.insert(
                format!("{item}/scale"),
                json!({"get": sop("get", "read"), "put": sop("put", "replace"), "patch": sp}),
            );
        }
    }
    // Reviews are create-only; kubectl explain finds their kind through this path's operation.
    for r in REVIEWS
        .iter()
        .filter(|r| r.group == group && version == "v1")
    {
        let path = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        paths.insert(
            path,
            json!({"post": {
                "tags": [openapi_tag(group, version)],
                "operationId": format!("create{}", r.kind),
                "parameters": op_params(true),
                "responses": {"201": {"description": "Created"}},
                "x-kubernetes-action": "post",
                "x-kubernetes-group-version-kind": {"group": r.group, "version": "v1", "kind": r.kind},
            }}),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {},
    })
}

/// `core_v1`, `coordination_v1`, `events_v1`, `rbacAuthorization_v1`: kube-apiserver's tag names.
fn openapi_tag(group: &str, version: &str) -> String {
    if group.is_empty() {
        return format!("core_{version}");
    }
    let first = group.split('.').next().unwrap_or(group);
    let mut out = String::new();
    let mut upper = false;
    for c in first.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    format!("{out}_{version}")
}

pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2`: a document without definitions. kubectl fetches it (as protobuf) to validate the items of a
/// `kind: List` on the client side and skips kinds it finds no schema for; the served kinds are validated by
/// the server (`fieldValidation=Strict`, advertised in `/openapi/v3`). Returns (content type, body).
pub fn openapi_v2(accept: &str) -> (&'static str, Vec<u8>) {
    if accept.contains("protobuf") {
        // gnostic openapi_v2.Document { swagger: "2.0" (1), info: Info { title (1), version (2) } (2) }.
        fn field(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
            out.push(tag);
            let mut n = bytes.len();
            while n >= 0x80 {
                out.push((n as u8 & 0x7f) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
            out.extend_from_slice(bytes);
        }
        let mut info = Vec::new();
        field(0x0a, b"Kubernetes", &mut info);
        field(0x12, GIT_VERSION.as_bytes(), &mut info);
        let mut doc = Vec::new();
        field(0x0a, b"2.0", &mut doc);
        field(0x12, &info, &mut doc);
        return (OPENAPI_V2_PROTOBUF, doc);
    }
    let v = json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": {}, "definitions": {}});
    (
        "application/json",
        serde_json::to_vec(&v).unwrap_or_default(),
    )
}

pub struct OpenApi {
    pub root: Value,
    docs: Vec<GroupDoc>,
}

/// One group-version document, built on first request (the schemas of `api/v1` alone are about 1 MB).
struct GroupDoc {
    key: String,
    group: &'static str,
    version: &'static str,
    hash: String,
    bytes: OnceLock<bytes::Bytes>,
}

/// Return the heap freed after building a document to the kernel (glibc's `malloc_trim(0)`): building
/// `api/v1` goes through several MB of JSON values, which glibc would otherwise keep mapped (the API
/// server's RSS stayed 6 MB higher after the first `kubectl create`). The agent does the same after pod
/// bursts (`skiff-agent`'s `memory::trim`).
fn give_back_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists under its arena locks; it takes no
        // pointers from us and may be called from any thread at any time.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// What the schemas are generated from: part of each document's hash, so that kubectl's cache (keyed by
/// the hash in `serverRelativeURL`) sees a new document when only the schemas change.
const SCHEMA_SOURCE: &str = "k8s-openapi 0.29 latest; patch metadata of k8s.io/api 1.32";

impl OpenApi {
    pub fn build() -> Self {
        let mut docs = Vec::new();
        let mut paths = serde_json::Map::new();
        let mut all_groups = vec![""];
        all_groups.extend(groups());
        for (group, version) in all_groups
            .into_iter()
            .flat_map(|g| versions(g).into_iter().map(move |v| (g, v)))
        {
            let key = openapi_key(group, version);
            let mut hasher = Sha256::new();
            hasher.update(SCHEMA_SOURCE);
            hasher.update(GIT_VERSION);
            hasher
                .update(serde_json::to_vec(&openapi_paths_doc(group, version)).unwrap_or_default());
            let hash = hex::encode_upper(hasher.finalize());
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
            );
            docs.push(GroupDoc {
                key,
                group,
                version,
                hash,
                bytes: OnceLock::new(),
            });
        }
        OpenApi {
            root: json!({"paths": paths}),
            docs,
        }
    }

    /// The hash and bytes of the document at `key` (`api/v1`, `apis/apps/v1`).
    pub fn doc(&self, key: &str) -> Option<(&str, bytes::Bytes)> {
        let d = self.docs.iter().find(|d| d.key == key)?;
        let bytes = d.bytes.get_or_init(|| {
            let bytes =
                serde_json::to_vec(&openapi_group_doc(d.group, d.version)).unwrap_or_default();
            give_back_heap();
            bytes.into()
        });
        Some((&d.hash, bytes.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_kind_has_a_schema() {
        let missing: Vec<String> = RESOURCES
            .iter()
            .map(|r| (r.group, r.version, r.kind))
            .chain(REVIEWS.iter().map(|r| (r.group, "v1", r.kind)))
            .filter(|(g, v, k)| !schemas::has(g, v, k))
            .map(|(g, v, k)| format!("{g}/{v} {k}"))
            .collect();
        assert!(missing.is_empty(), "no schema for {missing:?}");
    }

    #[test]
    fn aggregated_accept() {
        let a = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wants_aggregated(a), Some(AGGREGATED_CT));
        assert_eq!(wants_aggregated("application/json, */*"), None);
        let d = aggregated(true, AGGREGATED_CT);
        let pods = &d["items"][0]["versions"][0]["resources"][0];
        assert_eq!(pods["resource"], "pods");
        assert_eq!(pods["shortNames"][0], "po");
        assert_eq!(pods["subresources"][0]["subresource"], "status");
        let g = aggregated(false, AGGREGATED_CT);
        assert_eq!(g["items"][0]["metadata"]["name"], "coordination.k8s.io");
    }

    /// `kubectl create token` finds `serviceaccounts/token` (create, authentication.k8s.io/v1 TokenRequest).
    #[test]
    fn service_account_token_subresource() {
        let l = resource_list("", "v1").unwrap_or_default();
        let token = l["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == "serviceaccounts/token"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(token["verbs"], json!(["create"]));
        assert_eq!(token["kind"], "TokenRequest");
        assert_eq!(token["group"], "authentication.k8s.io");
        assert_eq!(token["version"], "v1");
        let d = aggregated(true, AGGREGATED_CT);
        let sa = d["items"][0]["versions"][0]["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["resource"] == "serviceaccounts"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            sa["subresources"],
            json!([{"subresource": "token", "verbs": ["create"],
                "responseKind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}}])
        );
    }

    /// apps/v1: Deployments and ReplicaSets with `status` and `scale` (autoscaling/v1 Scale), in legacy and
    /// aggregated discovery and in the group's OpenAPI document.
    #[test]
    fn apps_group() {
        assert!(
            api_group_list()["groups"]
                .as_array()
                .is_some_and(|gs| gs.iter().any(|g| g["name"] == "apps"))
        );
        assert_eq!(
            group("apps").unwrap_or_default()["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
        let l = resource_list("apps", "v1").unwrap_or_default();
        let find = |n: &str| {
            l["resources"]
                .as_array()
                .and_then(|rs| rs.iter().find(|r| r["name"] == n))
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(find("deployments")["shortNames"], json!(["deploy"]));
        assert_eq!(find("replicasets")["shortNames"], json!(["rs"]));
        assert_eq!(find("deployments")["categories"], json!(["all"]));
        for n in ["deployments/scale", "replicasets/scale"] {
            let s = find(n);
            assert_eq!(
                (&s["group"], &s["version"], &s["kind"]),
                (&json!("autoscaling"), &json!("v1"), &json!("Scale"))
            );
            assert_eq!(s["verbs"], json!(["get", "patch", "update"]));
        }
        assert_eq!(find("deployments/status")["kind"], "Deployment");
        let d = aggregated(false, AGGREGATED_CT);
        let apps = d["items"]
            .as_array()
            .and_then(|gs| gs.iter().find(|g| g["metadata"]["name"] == "apps"))
            .cloned()
            .unwrap_or_default();
        let deploy = &apps["versions"][0]["resources"][0];
        assert_eq!(deploy["resource"], "deployments");
        assert_eq!(deploy["singularResource"], "deployment");
        assert_eq!(
            deploy["subresources"][1],
            json!({"subresource": "scale", "verbs": ["get", "patch", "update"],
                "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}})
        );
        let o = OpenApi::build();
        let doc: Value =
            serde_json::from_slice(&o.doc("apis/apps/v1").map(|d| d.1).unwrap_or_default())
                .unwrap_or_default();
        let item = "/apis/apps/v1/namespaces/{namespace}/deployments/{name}";
        assert_eq!(
            doc["paths"][item]["patch"]["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert_eq!(
            doc["paths"][format!("{item}/scale")]["patch"]["x-kubernetes-group-version-kind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
        assert_eq!(
            doc["paths"][format!("{item}/scale")]["patch"]["operationId"],
            "patchDeploymentScale"
        );
        assert_eq!(doc["paths"][item]["get"]["tags"][0], "apps_v1");
    }

    #[test]
    fn openapi_has_field_validation_on_patch() {
        let o = OpenApi::build();
        let keys: Vec<&str> = o.docs.iter().map(|d| d.key.as_str()).collect();
        for k in [
            "api/v1",
            "apis/coordination.k8s.io/v1",
            "apis/events.k8s.io/v1",
        ] {
            assert!(keys.contains(&k), "{keys:?}");
        }
        let core: Value = serde_json::from_slice(&o.doc("api/v1").map(|d| d.1).unwrap_or_default())
            .unwrap_or_default();
        for kind in [
            "ConfigMap",
            "Secret",
            "Service",
            "Endpoints",
            "ServiceAccount",
        ] {
            let plural = format!("{}s", kind.to_lowercase());
            let plural = if kind == "Endpoints" {
                "endpoints".to_string()
            } else {
                plural
            };
            let p = &core["paths"][format!("/api/v1/namespaces/{{namespace}}/{plural}/{{name}}")]["patch"];
            assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], kind);
        }
        let (ct, pb) = openapi_v2("application/com.github.proto-openapi.spec.v2@v1.0+protobuf");
        assert_eq!(ct, OPENAPI_V2_PROTOBUF);
        assert_eq!(&pb[..5], b"\x0a\x032.0");
        let url = o.root["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap_or("");
        assert!(url.starts_with("/openapi/v3/api/v1?hash="));
        let doc: Value = serde_json::from_slice(&o.doc("api/v1").map(|d| d.1).unwrap_or_default())
            .unwrap_or_default();
        let p = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(
            p["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|x| x["name"] == "fieldValidation"))
        );
    }
}
