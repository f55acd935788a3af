//! The DaemonSet controller's ControllerRevisions: one per template, numbered, renumbered when a template
//! comes back (what `kubectl rollout undo` does), truncated to `revisionHistoryLimit`.

use super::*;

/// The DaemonSet's revisions as `(name, revision, image)`, oldest first.
async fn revisions(c: &Cluster) -> Vec<(String, i64, String)> {
    let (items, _) = c
        .api
        .list(
            by_kind(Kind::ControllerRevision),
            Some("default"),
            &Default::default(),
            &Default::default(),
        )
        .await
        .expect("list revisions");
    let mut out: Vec<(String, i64, String)> = items
        .iter()
        .map(|r| {
            let image = r["data"]["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = r["metadata"]["name"].as_str().unwrap_or("").to_string();
            (name, r["revision"].as_i64().unwrap_or(-1), image)
        })
        .collect();
    out.sort_by_key(|r| r.1);
    out
}

fn image_patch(image: &str) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
}

/// Play the kubelet until every pod runs `image`.
async fn roll_to(c: &Cluster, image: &str) {
    c.wait(&format!("every pod on {image}"), async |c| {
        c.ready_all().await;
        let pods = c.pods().await;
        pods.len() == 2
            && pods
                .iter()
                .all(|(_, p)| p["spec"]["containers"][0]["image"] == image)
    })
    .await;
}

#[tokio::test]
async fn revisions_are_made_numbered_and_reused_on_undo() {
    let c = cluster(&["n1", "n2"]).await;
    let mut ds = daemon_set("web");
    ds["metadata"]["annotations"] = json!({"kubernetes.io/change-cause": "first"});
    let created = c
        .api
        .create(by_kind(Kind::DaemonSet), Some("default"), ds, &[], &opts())
        .await
        .expect("create")
        .0;
    c.wait("two pods", async |c| c.pods().await.len() == 2)
        .await;
    let first_hash = c.pods().await[0].1["metadata"]["labels"]["controller-revision-hash"]
        .as_str()
        .expect("hash")
        .to_string();
    let first = format!("web-{first_hash}");
    c.wait("revision 1", async |c| revisions(c).await.len() == 1)
        .await;
    assert_eq!(
        revisions(&c).await,
        [(first.clone(), 1, "busybox:1.35".to_string())]
    );
    let stored = c
        .api
        .get(by_kind(Kind::ControllerRevision), Some("default"), &first)
        .await
        .expect("revision");
    assert_eq!(
        stored["metadata"]["labels"],
        json!({"app": "web", "controller-revision-hash": first_hash})
    );
    assert_eq!(
        stored["metadata"]["annotations"]["kubernetes.io/change-cause"],
        "first"
    );
    assert_eq!(
        stored["metadata"]["ownerReferences"][0]["uid"],
        created["metadata"]["uid"]
    );
    assert_eq!(stored["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(stored["data"]["spec"]["template"]["$patch"], "replace");
    // A new template: revision 2.
    c.patch_ds("web", image_patch("busybox:1.36")).await;
    roll_to(&c, "busybox:1.36").await;
    let after_update = revisions(&c).await;
    assert_eq!(after_update.len(), 2, "{after_update:?}");
    assert_eq!((after_update[0].1, after_update[1].1), (1, 2));
    assert_eq!(after_update[1].2, "busybox:1.36");
    // Undo as kubectl does: revision 1's data as a strategic merge patch. It becomes revision 3.
    c.api
        .patch(
            by_kind(Kind::DaemonSet),
            Some("default"),
            "web",
            None,
            crate::patch::PatchType::Strategic,
            stored["data"].clone(),
            &[],
            &opts(),
            false,
        )
        .await
        .expect("undo");
    roll_to(&c, "busybox:1.35").await;
    c.wait("revision 1 renumbered", async |c| {
        revisions(c).await.last().is_some_and(|r| r.1 == 3)
    })
    .await;
    let after_undo = revisions(&c).await;
    assert_eq!(after_undo.len(), 2, "no new revision: {after_undo:?}");
    assert_eq!(
        after_undo[1],
        (first.clone(), 3, "busybox:1.35".to_string())
    );
    let pods = c.pods().await;
    assert!(
        pods.iter().all(
            |(_, p)| p["metadata"]["labels"]["controller-revision-hash"] == first_hash.as_str()
        )
    );
    let (_store, _dir) = c.harness.stop().await;
}

#[tokio::test]
async fn old_revisions_no_pod_uses_are_truncated_to_the_limit() {
    let c = cluster(&["n1"]).await;
    // No node matches: no pod keeps any revision alive.
    let mut ds = daemon_set("idle");
    ds["spec"]["revisionHistoryLimit"] = json!(1);
    ds["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "none"});
    c.api
        .create(by_kind(Kind::DaemonSet), Some("default"), ds, &[], &opts())
        .await
        .expect("create");
    c.wait("revision 1", async |c| revisions(c).await.len() == 1)
        .await;
    for (n, image) in ["busybox:2", "busybox:3", "busybox:4"].iter().enumerate() {
        c.patch_ds("idle", image_patch(image)).await;
        let newest = n as i64 + 2;
        c.wait(&format!("revision {newest}"), async |c| {
            revisions(c).await.last().is_some_and(|r| r.1 == newest)
        })
        .await;
    }
    // The current one and the newest old one.
    c.wait("truncated", async |c| revisions(c).await.len() == 2)
        .await;
    let left: Vec<(i64, String)> = revisions(&c)
        .await
        .into_iter()
        .map(|r| (r.1, r.2))
        .collect();
    assert_eq!(
        left,
        [(3, "busybox:3".to_string()), (4, "busybox:4".to_string())]
    );
    assert!(c.pods().await.is_empty());
    let (_store, _dir) = c.harness.stop().await;
}
