use super::*;
use serde_json::{Value, json};

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: serde_json::to_vec(&value).expect("json"),
        create_revision: 1,
        mod_revision: 1,
    }
}

fn obj(uid: &str, refs: Value) -> Value {
    json!({"metadata": {"uid": uid, "ownerReferences": refs}})
}

fn owner_ref(kind: &str, name: &str, uid: &str, block: bool) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "name": name, "uid": uid, "blockOwnerDeletion": block})
}

fn dep(key: &str) -> Work {
    Work::Dependent(key.into())
}

#[test]
fn keys_resolve_to_served_resources() {
    let (def, ns, name) = resolve_key("/registry/pods/a/p").expect("pod");
    assert_eq!((def.plural, ns, name), ("pods", Some("a"), "p"));
    let (def, ns, name) = resolve_key("/registry/nodes/n1").expect("node");
    assert_eq!((def.plural, ns, name), ("nodes", None, "n1"));
    let (def, _, _) = resolve_key("/registry/events/a/e").expect("event");
    assert_eq!(def.group, "");
    assert!(resolve_key("/registry/serviceips/10.96.0.1").is_none());
    assert!(resolve_key("/registry/pods/a").is_none());
    assert!(resolve_key("/registry/nodes/a/b").is_none());
    assert!(resolve_key("/other/pods/a/b").is_none());
}

#[test]
fn index_follows_links() {
    let mut g = Graph::default();
    let p1 = "/registry/pods/a/p1";
    // A new dependent is checked once; an unchanged one is not.
    let work = g.apply_put(&kv(
        p1,
        obj("p1", json!([owner_ref("ConfigMap", "cm", "c1", true)])),
    ));
    assert_eq!(work, BTreeSet::from([dep(p1)]));
    let again = g.apply_put(&kv(
        p1,
        obj("p1", json!([owner_ref("ConfigMap", "cm", "c1", true)])),
    ));
    assert!(again.is_empty());
    assert_eq!(
        g.dependents_of("c1"),
        vec![DependentLink {
            key: p1.to_string(),
            blocks: true,
            terminating: false
        }]
    );
    // Being deleted: known as such.
    let mut dying = obj("p1", json!([owner_ref("ConfigMap", "cm", "c1", true)]));
    dying["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    assert!(g.apply_put(&kv(p1, dying)).is_empty());
    assert!(g.dependents_of("c1")[0].terminating);
    // Unparseable values and other keys are ignored.
    assert!(
        g.apply_put(&KeyValue {
            value: b"garbage".to_vec(),
            ..kv("/registry/pods/a/x", json!({}))
        })
        .is_empty()
    );
    assert!(
        g.apply_put(&kv("/registry/serviceips/x", json!({})))
            .is_empty()
    );
    // The owner goes: its dependents are checked.
    let gone = g.apply_delete(&kv("/registry/configmaps/a/cm", obj("c1", json!([]))));
    assert_eq!(gone, BTreeSet::from([dep(p1)]));
    // The dependent loses its references: nothing to check, the index forgets it.
    assert!(g.apply_put(&kv(p1, obj("p1", json!([])))).is_empty());
    assert!(g.dependents_of("c1").is_empty());
    assert_eq!(g.dependent_count(), 0);
}

#[test]
fn foreground_owner_and_blocking_dependents() {
    let mut g = Graph::default();
    let p1 = "/registry/pods/a/p1";
    let p2 = "/registry/pods/a/p2";
    let cm = "/registry/configmaps/a/cm";
    g.apply_put(&kv(
        p1,
        obj("p1", json!([owner_ref("ConfigMap", "cm", "c1", true)])),
    ));
    g.apply_put(&kv(
        p2,
        obj("p2", json!([owner_ref("ConfigMap", "cm", "c1", false)])),
    ));
    g.apply_put(&kv(cm, json!({"metadata": {"uid": "c1"}})));
    let work = g.apply_put(&kv(
        cm,
        json!({"metadata": {"uid": "c1",
        "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["foregroundDeletion"]}}),
    ));
    assert_eq!(
        work,
        BTreeSet::from([dep(p1), dep(p2), Work::Owner(cm.into())])
    );
    assert!(g.is_deleting_dependents(cm));
    // The non-blocking dependent goes: the owner need not look again.
    assert!(
        g.apply_delete(&kv(
            p2,
            obj("p2", json!([owner_ref("ConfigMap", "cm", "c1", false)]))
        ))
        .is_empty()
    );
    // The blocking one goes: the owner is looked at.
    let work = g.apply_delete(&kv(
        p1,
        obj("p1", json!([owner_ref("ConfigMap", "cm", "c1", true)])),
    ));
    assert_eq!(work, BTreeSet::from([Work::Owner(cm.into())]));
    // Finalizer removed (still terminating for another finalizer): no longer deleting dependents.
    g.apply_put(&kv(
        cm,
        json!({"metadata": {"uid": "c1",
        "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x"]}}),
    ));
    assert!(!g.is_deleting_dependents(cm));
}

#[test]
fn reset_checks_only_what_needs_it() {
    let mut g = Graph::default();
    let kvs = [
        kv(
            "/registry/configmaps/a/cm",
            json!({"metadata": {"uid": "c1"}}),
        ),
        kv(
            "/registry/pods/a/ok",
            obj("p1", json!([owner_ref("ConfigMap", "cm", "c1", true)])),
        ),
        kv(
            "/registry/pods/a/wrong-uid",
            obj("p2", json!([owner_ref("ConfigMap", "cm", "c2", true)])),
        ),
        kv(
            "/registry/pods/a/orphaned",
            obj("p3", json!([owner_ref("ConfigMap", "gone", "c3", true)])),
        ),
        kv(
            "/registry/pods/a/unknown",
            obj(
                "p4",
                json!([{"apiVersion": "x/v1", "kind": "W", "name": "w", "uid": "w1"}]),
            ),
        ),
        kv(
            "/registry/configmaps/b/dying",
            json!({"metadata": {"uid": "c4",
            "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["orphan"]}}),
        ),
    ];
    let work = g.reset(&kvs);
    assert_eq!(
        work,
        BTreeSet::from([
            dep("/registry/pods/a/orphaned"),
            dep("/registry/pods/a/wrong-uid"),
            Work::Owner("/registry/configmaps/b/dying".into()),
        ])
    );
    assert_eq!(g.dependent_count(), 4);
    // A second reset forgets the first.
    assert!(g.reset(&kvs[..2]).is_empty());
    assert_eq!(g.dependent_count(), 1);
}
