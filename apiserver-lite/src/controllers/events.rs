//! Recording core/v1 Events about pods and other objects.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::store::{Store, StoreError};

/// The pod an event is about.
#[derive(Debug, Clone)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
}

/// Any object an event is about (`involvedObject`).
#[derive(Debug, Clone)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
}

impl From<&PodRef> for ObjectRef {
    fn from(pod: &PodRef) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            resource_version: pod.resource_version.clone(),
        }
    }
}

impl ObjectRef {
    /// The reference to a stored object of `kind` (`apiVersion` `api_version`).
    pub fn of(api_version: &str, kind: &str, obj: &serde_json::Value) -> ObjectRef {
        let at = |p: &str| {
            obj.pointer(p)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: at("/metadata/namespace"),
            name: at("/metadata/name"),
            uid: at("/metadata/uid"),
            resource_version: at("/metadata/resourceVersion"),
        }
    }
}

/// Record an event from a controller about `object`. Events are best effort: a failure is logged, not
/// returned.
pub async fn record_for(
    store: &dyn Store,
    component: &str,
    object: &ObjectRef,
    type_: EventType,
    reason: &str,
    message: &str,
) {
    if let Err(err) = record_about(store, component, object, type_, reason, message).await {
        tracing::warn!(kind = %object.kind, name = %object.name, error = %err, "failed to record event");
    }
}

#[derive(Debug, Clone, Copy)]
pub enum EventType {
    Normal,
    Warning,
}

/// Write one Event (count 1) from `component` about `pod`.
pub async fn record(
    store: &dyn Store,
    component: &str,
    pod: &PodRef,
    type_: EventType,
    reason: &str,
    message: &str,
) -> Result<(), StoreError> {
    record_about(store, component, &pod.into(), type_, reason, message).await
}

/// Write one Event (count 1) from `component` about `object`.
pub async fn record_about(
    store: &dyn Store,
    component: &str,
    pod: &ObjectRef,
    type_: EventType,
    reason: &str,
    message: &str,
) -> Result<(), StoreError> {
    let now = jiff::Timestamp::now();
    let mut attempt: i128 = 0;
    loop {
        // kube's recorder names events `<object>.<hex unix nanos>`; bump on the rare collision.
        let nanos = now.as_nanosecond() + attempt;
        let name = format!("{}.{:016x}", pod.name, nanos as u64);
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(pod.namespace.clone()),
                uid: Some(uuid::Uuid::new_v4().to_string()),
                creation_timestamp: Some(Time(now)),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(pod.api_version.clone()),
                kind: Some(pod.kind.clone()),
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                uid: Some(pod.uid.clone()),
                resource_version: Some(pod.resource_version.clone()),
                ..ObjectReference::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            source: Some(EventSource {
                component: Some(component.into()),
                host: None,
            }),
            reporting_component: Some(component.into()),
            reporting_instance: Some(component.into()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            type_: Some(match type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            ..Event::default()
        };
        let mut value =
            serde_json::to_value(&event).map_err(|e| StoreError::Backend(e.to_string()))?;
        if let Some(object) = value.as_object_mut() {
            object.insert("apiVersion".into(), "v1".into());
            object.insert("kind".into(), "Event".into());
        }
        let bytes = serde_json::to_vec(&value).map_err(|e| StoreError::Backend(e.to_string()))?;
        let key = format!("{}{}/{}", super::EVENTS_PREFIX, pod.namespace, name);
        match store.create(&key, bytes).await {
            Err(StoreError::AlreadyExists(_)) if attempt < 3 => attempt += 1,
            other => return other.map(|_| ()),
        }
    }
}
