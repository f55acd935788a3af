//! Unit tests: the RBAC evaluator, the Node authorizer and NodeRestriction over a real (temporary) store.

mod node_authorizer;
mod rbac_cache;
mod rbac_evaluator;

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::{Value, json};

use super::*;
use crate::resources::{Kind, by_kind};
use crate::store::redb::RedbStore;

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(v(groups)),
        resources: Some(v(resources)),
        verbs: v(verbs),
        resource_names: (!names.is_empty()).then(|| v(names)),
        non_resource_urls: None,
    }
}

fn attrs(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
    Attributes {
        user: "alice".into(),
        groups: vec!["dev".into(), AUTHENTICATED_GROUP.into()],
        verb: verb.into(),
        resource_request: true,
        api_group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
        path: String::new(),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    authz: Authorizer,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
    bootstrap::ensure_defaults(store.as_ref())
        .await
        .expect("defaults");
    let authz = Authorizer::new(store.clone());
    Fixture {
        _dir: dir,
        store,
        authz,
    }
}

impl Fixture {
    async fn put(&self, kind: Kind, ns: Option<&str>, obj: Value) {
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        let key = by_kind(kind).key(ns, &name);
        self.store
            .create(&key, serde_json::to_vec(&obj).expect("json"))
            .await
            .expect("create");
    }

    async fn allowed(&self, a: &Attributes) -> bool {
        self.authz.authorize(a).await.expect("authorize") == Decision::Allow
    }
}

fn as_user(mut a: Attributes, user: &str, groups: &[&str]) -> Attributes {
    a.user = user.into();
    a.groups = groups.iter().map(|s| s.to_string()).collect();
    a.groups.push(AUTHENTICATED_GROUP.into());
    a
}

fn node_attrs(
    node: &str,
    verb: &str,
    group: &str,
    res: &str,
    sub: &str,
    ns: &str,
    name: &str,
) -> Attributes {
    as_user(
        attrs(verb, group, res, sub, ns, name),
        &format!("system:node:{node}"),
        &[node::NODES_GROUP],
    )
}

fn pod(ns: &str, name: &str, node: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}")},
           "spec": {"nodeName": node, "imagePullSecrets": [{"name": "regcred"}],
                    "containers": [{"name": "c", "image": "x",
                        "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "a"}}}],
                        "envFrom": [{"secretRef": {"name": "env-secret"}}]}],
                    "volumes": [{"name": "v", "configMap": {"name": "vol-cm"}},
                                {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}}]}}]}})
}
