//! core/v1 Events about pods (`source.component=kubelet`), sent in the background so that recording an
//! event never delays a pod.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use tokio::sync::mpsc;

use crate::runtime::labels::ContainerKind;

const QUEUE: usize = 1024;
const CONCURRENCY: usize = 8;

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Event>,
    node: String,
}

impl Recorder {
    pub fn spawn(client: kube::Client, node: String) -> Self {
        let (tx, rx) = mpsc::channel::<Event>(QUEUE);
        tokio::spawn(async move {
            tokio_stream::wrappers::ReceiverStream::new(rx)
                .for_each_concurrent(CONCURRENCY, |ev| {
                    let client = client.clone();
                    async move {
                        let ns = ev
                            .metadata
                            .namespace
                            .clone()
                            .unwrap_or_else(|| "default".into());
                        let api: Api<Event> = Api::namespaced(client, &ns);
                        if let Err(e) = api.create(&PostParams::default(), &ev).await {
                            tracing::debug!(error = %e, reason = ?ev.reason, "cannot record event");
                        }
                    }
                })
                .await;
        });
        Self { tx, node }
    }

    pub fn normal(&self, pod: &Pod, field_path: Option<String>, reason: &str, message: String) {
        self.record(pod, field_path, "Normal", reason, message);
    }

    pub fn warning(&self, pod: &Pod, field_path: Option<String>, reason: &str, message: String) {
        self.record(pod, field_path, "Warning", reason, message);
    }

    fn record(
        &self,
        pod: &Pod,
        field_path: Option<String>,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        self.send(build(pod, field_path, type_, reason, message, &self.node));
    }

    /// A Warning about this agent's Node (image GC failures).
    pub fn node_warning(&self, reason: &str, message: String) {
        let node = ObjectReference {
            kind: Some("Node".into()),
            name: Some(self.node.clone()),
            uid: Some(self.node.clone()),
            ..Default::default()
        };
        self.send(event(node, "Warning", reason, message, &self.node));
    }

    fn send(&self, ev: Event) {
        if let Err(e) = self.tx.try_send(ev) {
            let reason = e.into_inner().reason;
            tracing::debug!(?reason, "event queue full, dropping event");
        }
    }
}

/// `spec.containers{name}` / `spec.initContainers{name}` / `spec.ephemeralContainers{name}`: the involved
/// object's field path.
pub fn container_field(kind: ContainerKind, name: &str) -> String {
    match kind {
        ContainerKind::Init => format!("spec.initContainers{{{name}}}"),
        ContainerKind::App => format!("spec.containers{{{name}}}"),
        ContainerKind::Ephemeral => format!("spec.ephemeralContainers{{{name}}}"),
    }
}

pub fn build(
    pod: &Pod,
    field_path: Option<String>,
    type_: &str,
    reason: &str,
    message: String,
    node: &str,
) -> Event {
    let involved = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path,
    };
    event(involved, type_, reason, message, node)
}

/// An event about `involved`, in its namespace (`default` for cluster-scoped objects), named after it.
fn event(
    involved: ObjectReference,
    type_: &str,
    reason: &str,
    message: String,
    node: &str,
) -> Event {
    let now = jiff::Timestamp::now();
    let name = involved.name.clone().unwrap_or_default();
    let suffix = format!(
        "{:x}",
        now.as_nanosecond() as u128 ^ (uuid::Uuid::new_v4().as_u128() & 0xffff)
    );
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{suffix}")),
            namespace: Some(
                involved
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            ),
            ..Default::default()
        },
        involved_object: involved,
        reason: Some(reason.to_string()),
        message: Some(message),
        type_: Some(type_.to_string()),
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: Some(node.to_string()),
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(node.to_string()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_shape() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("nginx".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let ev = build(
            &pod,
            Some(container_field(ContainerKind::App, "nginx")),
            "Normal",
            "Started",
            "Started container nginx".into(),
            "n1",
        );
        assert!(
            ev.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("nginx."))
        );
        assert_eq!(
            ev.involved_object.field_path.as_deref(),
            Some("spec.containers{nginx}")
        );
        assert_eq!(ev.source.and_then(|s| s.host).as_deref(), Some("n1"));
        assert_eq!(
            container_field(ContainerKind::Init, "i"),
            "spec.initContainers{i}"
        );
        assert_eq!(
            container_field(ContainerKind::Ephemeral, "d"),
            "spec.ephemeralContainers{d}"
        );
    }
}
