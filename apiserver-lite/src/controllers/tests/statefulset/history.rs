//! The StatefulSet controller's ControllerRevisions: one per template (named as the pods'
//! `controller-revision-hash`), renumbered when a template comes back, and the source of the current
//! revision's template for pods below the partition.

use super::*;
use crate::controllers::tests::opts;

/// The revisions as `(name, revision, image)`, oldest first.
async fn revisions(c: &Cluster) -> Vec<(String, i64, String)> {
    let mut out: Vec<(String, i64, String)> = c
        .list(Kind::ControllerRevision)
        .await
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

async fn image_of(c: &Cluster, name: &str) -> String {
    pod(c, name)
        .await
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn revisions_follow_the_template_and_feed_pods_below_the_partition() {
    let c = cluster().await;
    let mut body = statefulset("web", 2, "OrderedReady");
    body["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}});
    let set = c.create(Kind::StatefulSet, body).await;
    c.wait("two pods Ready", async |c| {
        kubelet_ready(c).await;
        c.get(Kind::StatefulSet, "web").await.expect("set")["status"]["readyReplicas"] == 2
    })
    .await;
    let first = revision(&pod(&c, "web-0").await.expect("web-0"));
    assert_eq!(
        revisions(&c).await,
        [(first.clone(), 1, "busybox".to_string())]
    );
    let stored = c
        .get(Kind::ControllerRevision, &first)
        .await
        .expect("revision");
    assert_eq!(
        stored["metadata"]["ownerReferences"][0]["uid"],
        uid(&set).as_str()
    );
    assert_eq!(stored["metadata"]["labels"], json!({"app": "web"}));
    // A new template: revision 2; only web-1 (above the partition) moves to it.
    c.patch(
        Kind::StatefulSet,
        "web",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}}),
    )
    .await;
    c.wait("web-1 on busybox:2", async |c| {
        kubelet_ready(c).await;
        image_of(c, "web-1").await == "busybox:2"
    })
    .await;
    let two = revisions(&c).await;
    assert_eq!(two.len(), 2, "{two:?}");
    assert_eq!((two[1].1, two[1].2.as_str()), (2, "busybox:2"));
    // web-0, below the partition, comes back from the current revision's ControllerRevision.
    let web0 = pod(&c, "web-0").await.expect("web-0");
    c.api
        .delete(
            by_kind(Kind::Pod),
            Some("default"),
            "web-0",
            &DeleteOpts::default(),
            false,
        )
        .await
        .expect("delete web-0");
    c.wait("web-0 made again", async |c| {
        kubelet_ready(c).await;
        pod(c, "web-0")
            .await
            .is_some_and(|p| uid(&p) != uid(&web0) && !terminating(&p))
    })
    .await;
    assert_eq!(image_of(&c, "web-0").await, "busybox");
    assert_eq!(revision(&pod(&c, "web-0").await.expect("web-0")), first);
    // Undo as kubectl does (revision 1's data as a strategic merge patch): revision 1 becomes 3.
    c.api
        .patch(
            by_kind(Kind::StatefulSet),
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
    c.wait("web-1 back on busybox", async |c| {
        kubelet_ready(c).await;
        image_of(c, "web-1").await == "busybox"
    })
    .await;
    c.wait("revision 1 renumbered", async |c| {
        revisions(c).await.last().is_some_and(|r| r.1 == 3)
    })
    .await;
    let after = revisions(&c).await;
    assert_eq!(after.len(), 2, "no new revision: {after:?}");
    assert_eq!(after[1], (first.clone(), 3, "busybox".to_string()));
    c.harness.stop().await;
}
