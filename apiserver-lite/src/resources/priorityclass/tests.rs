//! PriorityClass validation (kube's messages) and the Priority admission, through the API's verbs over a
//! real store.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::handlers::{Api, DeleteOpts, WriteOpts};
use crate::status::ApiError;
use crate::store::redb::RedbStore;
use crate::strict::FieldValidation;

fn class(name: &str, value: i64) -> Value {
    json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": name}, "value": value})
}

fn lines(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::to_line).collect()
}

#[test]
fn normalize_defaults_a_missing_value_to_zero_and_policy_to_preempt_lower() {
    let mut c = normalize(
        &json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": "low"}}),
    )
    .expect("normalize");
    defaults(&mut c);
    assert_eq!(c["value"], 0);
    assert_eq!(c["preemptionPolicy"], "PreemptLowerPriority");
    let mut never = class("bg", 5);
    never["preemptionPolicy"] = json!("Never");
    defaults(&mut never);
    assert_eq!(never["preemptionPolicy"], "Never");
}

#[test]
fn validation_uses_kube_messages() {
    assert!(validate(&class("high", 1_000_000_000)).is_empty());
    assert_eq!(
        lines(&validate(&class("too-high", 1_000_000_001))),
        ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
    );
    assert_eq!(
        lines(&validate(&class("system-mine", 10))),
        [
            "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for \
          system use only. error: system-mine is not a known system priority class"
        ]
    );
    assert_eq!(
        lines(&validate(&class("system-node-critical", 10))),
        [
            "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for \
          system use only. error: value of system-node-critical PriorityClass must be 2000001000"
        ]
    );
    for system in SYSTEM_CLASSES {
        assert!(validate(&system_class_object(system)).is_empty());
    }
    let mut bad = class("odd", 1);
    bad["preemptionPolicy"] = json!("Sometimes");
    assert_eq!(
        lines(&validate(&bad)),
        [
            "preemptionPolicy: Unsupported value: \"Sometimes\": supported values: \
          \"PreemptLowerPriority\", \"Never\""
        ]
    );
}

#[test]
fn value_and_preemption_policy_are_immutable() {
    let mut old = class("high", 1000);
    defaults(&mut old);
    let mut new = old.clone();
    new["description"] = json!("changed");
    new["globalDefault"] = json!(true);
    assert!(validate_update(&old, &new).is_empty());
    new["value"] = json!(1001);
    new["preemptionPolicy"] = json!("Never");
    assert_eq!(
        lines(&validate_update(&old, &new)),
        [
            "value: Forbidden: may not be changed in an update.",
            "preemptionPolicy: Invalid value: \"Never\": field is immutable",
        ]
    );
}

#[test]
fn table_row_has_kube_columns() {
    let mut c = class("high", 1000);
    defaults(&mut c);
    let cols = columns(json!({"name": "Name"}), json!({"name": "Age"}));
    let names: Vec<&str> = cols.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(
        names,
        ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"]
    );
    assert_eq!(
        cells(&c, "high".into(), "5s".into()),
        [
            json!("high"),
            json!(1000),
            json!(false),
            json!("5s"),
            json!("PreemptLowerPriority")
        ]
    );
}

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
    let created = ensure_system_classes(store.as_ref())
        .await
        .expect("system classes");
    assert_eq!(created, ["system-node-critical", "system-cluster-critical"]);
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

fn pod(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "c", "image": "nginx"}]);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
}

impl Fixture {
    async fn create(&self, kind: Kind, obj: Value) -> Result<Value, ApiError> {
        let def = by_kind(kind);
        let ns = def.namespaced.then_some("default");
        self.api
            .create(def, ns, obj, &[], &opts())
            .await
            .map(|(v, _)| v)
    }

    async fn update(&self, kind: Kind, obj: Value) -> Result<Value, ApiError> {
        let def = by_kind(kind);
        let ns = def.namespaced.then_some("default");
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        self.api
            .update(def, ns, &name, None, obj, &[], &opts())
            .await
            .map(|(v, _, _)| v)
    }

    async fn stored(&self, kind: Kind, name: &str) -> Option<Value> {
        let def = by_kind(kind);
        let ns = def.namespaced.then_some("default");
        self.api.get(def, ns, name).await.ok()
    }
}

#[tokio::test]
async fn system_classes_are_created_once_and_cannot_be_deleted() {
    let f = fixture().await;
    let again = ensure_system_classes(f.api.store.as_ref())
        .await
        .expect("again");
    assert!(again.is_empty());
    let node = f
        .stored(Kind::PriorityClass, "system-node-critical")
        .await
        .expect("stored");
    assert_eq!(node["value"], 2_000_001_000);
    assert_eq!(
        node["description"],
        "Used for system critical pods that must not be moved from their current node."
    );
    let err = f
        .api
        .delete(
            by_kind(Kind::PriorityClass),
            None,
            "system-cluster-critical",
            &DeleteOpts::default(),
            false,
        )
        .await
        .expect_err("forbidden");
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "priorityclasses.scheduling.k8s.io \"system-cluster-critical\" is forbidden: this is a \
         system priority class and cannot be deleted"
    );
    assert!(
        f.stored(Kind::PriorityClass, "system-cluster-critical")
            .await
            .is_some()
    );
}

#[tokio::test]
async fn pods_get_the_priority_of_their_class() {
    let f = fixture().await;
    let mut never = class("batch", 1000);
    never["preemptionPolicy"] = json!("Never");
    f.create(Kind::PriorityClass, never).await.expect("class");

    let p = f
        .create(Kind::Pod, pod("a", json!({"priorityClassName": "batch"})))
        .await
        .expect("pod");
    assert_eq!(p["spec"]["priority"], 1000);
    assert_eq!(p["spec"]["preemptionPolicy"], "Never");

    let p = f
        .create(
            Kind::Pod,
            pod("node", json!({"priorityClassName": "system-node-critical"})),
        )
        .await
        .expect("pod");
    assert_eq!(p["spec"]["priority"], 2_000_001_000);

    // Without a class and without a default class: 0.
    let p = f
        .create(Kind::Pod, pod("plain", json!({})))
        .await
        .expect("pod");
    assert_eq!(p["spec"]["priority"], 0);
    assert_eq!(p["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    assert!(p["spec"].get("priorityClassName").is_none());

    // The same value as the class is accepted, another one is not.
    f.create(
        Kind::Pod,
        pod(
            "same",
            json!({"priorityClassName": "batch", "priority": 1000}),
        ),
    )
    .await
    .expect("same priority");
    let err = f
        .create(
            Kind::Pod,
            pod(
                "other",
                json!({"priorityClassName": "batch", "priority": 7}),
            ),
        )
        .await
        .expect_err("forbidden");
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "pods \"other\" is forbidden: the integer value of priority (7) must not be provided in pod \
         spec; priority admission controller computed 1000 from the given PriorityClass name"
    );
    let err = f
        .create(
            Kind::Pod,
            pod("policy", json!({"preemptionPolicy": "Never"})),
        )
        .await
        .expect_err("forbidden");
    assert_eq!(
        err.message,
        "pods \"policy\" is forbidden: the string value of PreemptionPolicy (Never) must not be \
         provided in pod spec; priority admission controller computed PreemptLowerPriority from the \
         given PriorityClass name"
    );
    assert!(f.stored(Kind::Pod, "other").await.is_none());
}

#[tokio::test]
async fn a_missing_class_refuses_the_pod() {
    let f = fixture().await;
    let err = f
        .create(Kind::Pod, pod("x", json!({"priorityClassName": "nope"})))
        .await
        .expect_err("forbidden");
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "pods \"x\" is forbidden: no PriorityClass with name nope was found"
    );
    assert!(f.stored(Kind::Pod, "x").await.is_none());
}

#[tokio::test]
async fn the_global_default_applies_to_pods_without_a_class_and_is_unique() {
    let f = fixture().await;
    let mut low = class("low", 10);
    low["globalDefault"] = json!(true);
    f.create(Kind::PriorityClass, low).await.expect("default");
    let mut second = class("second", 20);
    second["globalDefault"] = json!(true);
    let err = f
        .create(Kind::PriorityClass, second)
        .await
        .expect_err("forbidden");
    assert_eq!(
        err.message,
        "priorityclasses.scheduling.k8s.io \"second\" is forbidden: PriorityClass low is already \
         marked as default. Only one default can exist"
    );
    // Nor may an existing class become a second default.
    let other = f
        .create(Kind::PriorityClass, class("other", 30))
        .await
        .expect("other");
    let mut marked = other.clone();
    marked["globalDefault"] = json!(true);
    let err = f
        .update(Kind::PriorityClass, marked)
        .await
        .expect_err("forbidden");
    assert_eq!(err.code, 403);
    // The default itself may be updated.
    let mut low = f.stored(Kind::PriorityClass, "low").await.expect("low");
    low["description"] = json!("the default");
    f.update(Kind::PriorityClass, low).await.expect("update");

    let p = f.create(Kind::Pod, pod("p", json!({}))).await.expect("pod");
    assert_eq!(p["spec"]["priorityClassName"], "low");
    assert_eq!(p["spec"]["priority"], 10);
}

#[tokio::test]
async fn pod_updates_keep_the_resolved_priority() {
    let f = fixture().await;
    f.create(Kind::PriorityClass, class("high", 1000))
        .await
        .expect("class");
    let p = f
        .create(Kind::Pod, pod("web", json!({"priorityClassName": "high"})))
        .await
        .expect("pod");
    // A body without the priority fields keeps them.
    let mut body = p.clone();
    if let Some(spec) = body["spec"].as_object_mut() {
        spec.remove("priority");
        spec.remove("preemptionPolicy");
    }
    body["metadata"]["labels"] = json!({"a": "b"});
    let updated = f.update(Kind::Pod, body).await.expect("update");
    assert_eq!(updated["spec"]["priority"], 1000);
    // A changed priority is refused by the immutable pod spec.
    let mut body = updated.clone();
    body["spec"]["priority"] = json!(5);
    let err = f.update(Kind::Pod, body).await.expect_err("immutable");
    assert_eq!(err.code, 422);
}

/// The body `kubectl create priorityclass` sends with its typed client (protobuf), decoded as JSON.
#[test]
fn protobuf_bodies_decode() {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
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
    let mut meta = Vec::new();
    ld(1, b"low", &mut meta);
    let mut pc = Vec::new();
    ld(1, &meta, &mut pc);
    // int32 -5 goes on the wire sign-extended to 64 bits.
    vi(2, (-5i64) as u64, &mut pc);
    vi(3, 1, &mut pc);
    ld(4, b"x", &mut pc);
    ld(5, b"Never", &mut pc);
    let mut type_meta = Vec::new();
    ld(1, b"scheduling.k8s.io/v1", &mut type_meta);
    ld(2, b"PriorityClass", &mut type_meta);
    let mut unknown = Vec::new();
    ld(1, &type_meta, &mut unknown);
    ld(2, &pc, &mut unknown);
    let mut body = b"k8s\0".to_vec();
    body.extend_from_slice(&unknown);
    let decoded = crate::protobuf::decode(&body).expect("decode");
    assert_eq!(
        decoded,
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": "low"}, "value": -5, "globalDefault": true, "description": "x",
            "preemptionPolicy": "Never"})
    );
}
