//! Container identity: ids and the labels every skiff container carries (docs/contracts.md).

use std::collections::HashMap;

pub const POD_UID: &str = "io.skiff.pod.uid";
pub const POD_NAMESPACE: &str = "io.skiff.pod.namespace";
pub const POD_NAME: &str = "io.skiff.pod.name";
pub const CONTAINER_NAME: &str = "io.skiff.container.name";
pub const CONTAINER_ATTEMPT: &str = "io.skiff.container.attempt";
pub const CONTAINER_KIND: &str = "io.skiff.container.kind";
/// Start time (written right after the start) and how the container ended (written after the task is
/// deleted), so an agent restart reports the same status.
pub const EXIT_CODE: &str = "io.skiff.exit.code";
pub const EXIT_REASON: &str = "io.skiff.exit.reason";
pub const STARTED_AT: &str = "io.skiff.container.started-at";
pub const FINISHED_AT: &str = "io.skiff.exit.finished-at";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerKind {
    Init,
    App,
    /// `spec.ephemeralContainers` (kubectl debug): started once, never restarted, not part of readiness.
    Ephemeral,
}

impl ContainerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerKind::Init => "init",
            ContainerKind::App => "app",
            ContainerKind::Ephemeral => "ephemeral",
        }
    }
}

/// Who a container belongs to; the same facts as its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMeta {
    pub pod_uid: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub container_name: String,
    pub attempt: u32,
    pub kind: ContainerKind,
}

impl ContainerMeta {
    /// `<pod-uid>-<container-name>-<attempt>`.
    pub fn container_id(&self) -> String {
        container_id(&self.pod_uid, &self.container_name, self.attempt)
    }

    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (POD_UID.to_string(), self.pod_uid.clone()),
            (POD_NAMESPACE.to_string(), self.pod_namespace.clone()),
            (POD_NAME.to_string(), self.pod_name.clone()),
            (CONTAINER_NAME.to_string(), self.container_name.clone()),
            (CONTAINER_ATTEMPT.to_string(), self.attempt.to_string()),
            (CONTAINER_KIND.to_string(), self.kind.as_str().to_string()),
        ])
    }

    /// Read the labels back; `None` when a label is missing or malformed (not a skiff container).
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<Self> {
        let kind = match labels.get(CONTAINER_KIND)?.as_str() {
            "init" => ContainerKind::Init,
            "app" => ContainerKind::App,
            "ephemeral" => ContainerKind::Ephemeral,
            _ => return None,
        };
        Some(Self {
            pod_uid: labels.get(POD_UID)?.clone(),
            pod_namespace: labels.get(POD_NAMESPACE)?.clone(),
            pod_name: labels.get(POD_NAME)?.clone(),
            container_name: labels.get(CONTAINER_NAME)?.clone(),
            attempt: labels.get(CONTAINER_ATTEMPT)?.parse().ok()?,
            kind,
        })
    }
}

pub fn container_id(pod_uid: &str, container_name: &str, attempt: u32) -> String {
    format!("{pod_uid}-{container_name}-{attempt}")
}

/// containerd filter selecting the containers of one pod, or of every skiff pod.
pub fn filter(pod_uid: Option<&str>) -> String {
    match pod_uid {
        Some(uid) => format!("labels.\"{POD_UID}\"=={uid:?}"),
        None => format!("labels.\"{POD_UID}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ContainerMeta {
        ContainerMeta {
            pod_uid: "0d6c1f8e-1111-2222-3333-444455556666".into(),
            pod_namespace: "default".into(),
            pod_name: "nginx".into(),
            container_name: "web-server".into(),
            attempt: 3,
            kind: ContainerKind::App,
        }
    }

    #[test]
    fn id_and_labels_round_trip() {
        let m = meta();
        assert_eq!(
            m.container_id(),
            "0d6c1f8e-1111-2222-3333-444455556666-web-server-3"
        );
        let labels = m.labels();
        assert_eq!(labels.get(CONTAINER_ATTEMPT).map(String::as_str), Some("3"));
        assert_eq!(labels.get(CONTAINER_KIND).map(String::as_str), Some("app"));
        assert_eq!(ContainerMeta::from_labels(&labels), Some(m));
    }

    #[test]
    fn foreign_labels_are_rejected() {
        let mut labels = meta().labels();
        labels.insert(CONTAINER_ATTEMPT.into(), "x".into());
        assert_eq!(ContainerMeta::from_labels(&labels), None);
        labels.remove(CONTAINER_ATTEMPT);
        assert_eq!(ContainerMeta::from_labels(&labels), None);
    }

    #[test]
    fn filters() {
        assert_eq!(filter(Some("abc")), "labels.\"io.skiff.pod.uid\"==\"abc\"");
        assert_eq!(filter(None), "labels.\"io.skiff.pod.uid\"");
    }
}
