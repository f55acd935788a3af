//! The DefaultIngressClass plugin and the Ingress strategy, through the API's verbs over a real store.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::handlers::{Api, WriteOpts};
use crate::resources::ingress::admission::default_class;
use crate::resources::{Kind, by_kind};
use crate::status::ApiError;
use crate::store::Store;
use crate::store::redb::RedbStore;
use crate::strict::FieldValidation;

struct Fixture {
    _dir: tempfile::TempDir,
    api: Api,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
    crate::controllers::bootstrap(store.as_ref())
        .await
        .expect("namespaces");
    Fixture {
        _dir: dir,
        api: Api::new(store),
    }
}

fn opts() -> WriteOpts {
    WriteOpts {
        dry_run: false,
        field_validation: FieldValidation::Strict,
        field_manager: None,
        apply: false,
    }
}

impl Fixture {
    async fn create(&self, kind: Kind, obj: Value) -> Result<Value, ApiError> {
        let def = by_kind(kind);
        let ns = def.namespaced.then_some("default");
        Ok(self.api.create(def, ns, obj, &[], &opts()).await?.0)
    }

    async fn update(&self, sub: Option<&str>, obj: Value) -> Result<Value, ApiError> {
        let def = by_kind(Kind::Ingress);
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        Ok(self
            .api
            .update(def, Some("default"), &name, sub, obj, &[], &opts())
            .await?
            .0)
    }
}

fn class(name: &str, default: Option<&str>) -> Value {
    let mut c = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": name}, "spec": {"controller": "example.com/ingress"}});
    if let Some(d) = default {
        c["metadata"]["annotations"] = json!({"ingressclass.kubernetes.io/is-default-class": d});
    }
    c
}

fn ingress(name: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})
}

#[test]
fn the_newest_default_class_wins_then_the_name() {
    let at = |name: &str, ts: &str, default: &str| {
        let mut c = class(name, Some(default));
        c["metadata"]["creationTimestamp"] = json!(ts);
        c
    };
    let classes = [
        at("old", "2026-01-01T00:00:00Z", "true"),
        at("new-b", "2026-02-01T00:00:00Z", "true"),
        at("new-a", "2026-02-01T00:00:00Z", "true"),
        at("newest-but-not-default", "2026-03-01T00:00:00Z", "false"),
    ];
    assert_eq!(default_class(&classes).as_deref(), Some("new-a"));
    assert_eq!(default_class(&classes[3..]), None);
    assert_eq!(default_class(&[]), None);
}

#[tokio::test]
async fn an_ingress_without_a_class_gets_the_default_one() {
    let f = fixture().await;
    let created = f
        .create(Kind::Ingress, ingress("none"))
        .await
        .expect("create");
    assert!(created["spec"].get("ingressClassName").is_none());

    f.create(Kind::IngressClass, class("other", None))
        .await
        .expect("class");
    f.create(Kind::IngressClass, class("nginx", Some("true")))
        .await
        .expect("class");
    let created = f
        .create(Kind::Ingress, ingress("web"))
        .await
        .expect("create");
    assert_eq!(created["spec"]["ingressClassName"], "nginx");

    // A class named by the field or the deprecated annotation is kept.
    let mut named = ingress("named");
    named["spec"]["ingressClassName"] = json!("other");
    let created = f.create(Kind::Ingress, named).await.expect("create");
    assert_eq!(created["spec"]["ingressClassName"], "other");
    // "" is no class and no valid name either: kube's plugin leaves it, its validation refuses it.
    let mut empty = ingress("empty");
    empty["spec"]["ingressClassName"] = json!("");
    let err = f
        .create(Kind::Ingress, empty)
        .await
        .expect_err("empty class");
    assert!(
        err.message
            .contains("spec.ingressClassName: Invalid value: \"\""),
        "{err}"
    );
    let mut annotated = ingress("annotated");
    annotated["metadata"]["annotations"] = json!({"kubernetes.io/ingress.class": "traefik"});
    let created = f.create(Kind::Ingress, annotated).await.expect("create");
    assert!(created["spec"].get("ingressClassName").is_none());
}

#[tokio::test]
async fn status_is_written_through_status_only_and_spec_changes_bump_the_generation() {
    let f = fixture().await;
    let mut obj = ingress("web");
    obj["status"] = json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}});
    let created = f.create(Kind::Ingress, obj).await.expect("create");
    assert_eq!(created["status"], json!({"loadBalancer": {}}));
    assert_eq!(created["metadata"]["generation"], 1);

    let mut status = created.clone();
    status["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}]}});
    status["spec"]["defaultBackend"]["service"]["name"] = json!("ignored");
    let written = f.update(Some("status"), status).await.expect("status");
    assert_eq!(
        written["status"]["loadBalancer"]["ingress"][0]["ip"],
        "192.168.1.10"
    );
    assert_eq!(written["spec"]["defaultBackend"]["service"]["name"], "web");
    assert_eq!(written["metadata"]["generation"], 1);

    let mut spec = written.clone();
    spec["status"] = json!({"loadBalancer": {}});
    spec["spec"]["defaultBackend"]["service"]["name"] = json!("api");
    let updated = f.update(None, spec).await.expect("update");
    assert_eq!(updated["spec"]["defaultBackend"]["service"]["name"], "api");
    assert_eq!(
        updated["status"]["loadBalancer"]["ingress"][0]["ip"],
        "192.168.1.10"
    );
    assert_eq!(updated["metadata"]["generation"], 2);

    let mut bad = updated.clone();
    bad["status"] = json!({"loadBalancer": {"ingress": [{"ip": "not-an-ip"}]}});
    let err = f.update(Some("status"), bad).await.expect_err("invalid ip");
    assert_eq!(err.code, 422, "{err}");
}
