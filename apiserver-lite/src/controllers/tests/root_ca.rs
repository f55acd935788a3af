use serde_json::json;

use super::*;

const NS_KEY: &str = "/registry/namespaces/team-a";
const CM_KEY: &str = "/registry/configmaps/team-a/kube-root-ca.crt";

/// A new namespace gets the ConfigMap; a deleted or altered one comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_ca_config_map_is_published_and_restored() {
    let h = Harness::start();
    h.put(
        NS_KEY,
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "team-a", "uid": "u-team-a"},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
    )
    .await;
    let cm = h
        .wait_for(CM_KEY, "published", |v| v["data"]["ca.crt"] == TEST_CA_PEM)
        .await;
    assert_eq!(cm["data"].as_object().map(|m| m.len()), Some(1));

    // Deleted: created again.
    let kv = h.store.get(CM_KEY).await.expect("get").expect("exists");
    h.store
        .delete(CM_KEY, Some(kv.mod_revision))
        .await
        .expect("delete");
    h.wait_for(CM_KEY, "restored after delete", |v| {
        v["data"]["ca.crt"] == TEST_CA_PEM
    })
    .await;

    // Changed: put right.
    let kv = h.store.get(CM_KEY).await.expect("get").expect("exists");
    let mut changed: Value = serde_json::from_slice(&kv.value).expect("json");
    changed["data"] = json!({"ca.crt": "tampered", "extra": "x"});
    h.store
        .update(
            CM_KEY,
            serde_json::to_vec(&changed).expect("json"),
            kv.mod_revision,
        )
        .await
        .expect("update");
    h.wait_for(CM_KEY, "restored after change", |v| {
        v["data"] == json!({"ca.crt": TEST_CA_PEM})
    })
    .await;
    h.stop().await;
}
