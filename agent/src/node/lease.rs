//! The node heartbeat Lease `kube-node-lease/<node>` (40 s, renewed every 10 s).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};

pub const NAMESPACE: &str = "kube-node-lease";
pub const DURATION_SECONDS: i32 = 40;
pub const RENEW: Duration = Duration::from_secs(10);

pub async fn renew(client: &kube::Client, node: &str) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let now = MicroTime(jiff::Timestamp::now());
    let patch = serde_json::json!({
        "spec": { "holderIdentity": node, "leaseDurationSeconds": DURATION_SECONDS, "renewTime": now }
    });
    match api
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(node.to_string()),
                    namespace: Some(NAMESPACE.into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(node.to_string()),
                    lease_duration_seconds: Some(DURATION_SECONDS),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

pub async fn run(client: kube::Client, node: String) {
    let mut tick = tokio::time::interval(RENEW);
    loop {
        tick.tick().await;
        if let Err(e) = renew(&client, &node).await {
            tracing::warn!(error = %e, "cannot renew node lease");
        }
    }
}
