//! The `components.schemas` of the OpenAPI v3 group-version documents, as kube-apiserver serves them:
//! every kind's schema (named `io.k8s.api.core.v1.Pod`, …) with its `x-kubernetes-group-version-kind`, and
//! every definition it refers to. `kubectl explain` reads them.
//!
//! The schemas and their descriptions come from k8s-openapi's `JsonSchema` implementations (kube's own
//! OpenAPI definitions, generated into Rust). The `x-kubernetes-patch-strategy`/`-patch-merge-key` and
//! `x-kubernetes-list-type`/`-list-map-keys` extensions, which those lack, come from [`crate::patch::meta`]:
//! kubectl 1.32's client-side apply computes its strategic merge patch from these schemas (the merge keys
//! tell it to send `$patch: delete` for an item removed from a list), and the server merges with the same
//! table.

use std::borrow::Cow;

use k8s_openapi::schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use k8s_openapi::{Resource, api};
use serde_json::{Map, Value, json};

/// One kind with a schema: its group, version and kind, and how to add its schema to a generator.
struct Entry {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    add: fn(&mut SchemaGenerator) -> Cow<'static, str>,
}

fn add<T: JsonSchema>(generator: &mut SchemaGenerator) -> Cow<'static, str> {
    generator.subschema_for::<T>();
    T::schema_name()
}

const fn entry<T: Resource + JsonSchema>() -> Entry {
    Entry {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        add: add::<T>,
    }
}

/// Every kind skiff serves (stored kinds, reviews and subresource kinds such as Scale and Eviction).
static ENTRIES: &[Entry] = &[
    entry::<api::core::v1::Pod>(),
    entry::<api::core::v1::Node>(),
    entry::<api::core::v1::Namespace>(),
    entry::<api::core::v1::Event>(),
    entry::<api::core::v1::ConfigMap>(),
    entry::<api::core::v1::Secret>(),
    entry::<api::core::v1::Service>(),
    entry::<api::core::v1::Endpoints>(),
    entry::<api::core::v1::ServiceAccount>(),
    entry::<api::core::v1::PersistentVolume>(),
    entry::<api::core::v1::PersistentVolumeClaim>(),
    entry::<api::core::v1::LimitRange>(),
    entry::<api::core::v1::ResourceQuota>(),
    entry::<api::core::v1::ReplicationController>(),
    entry::<api::core::v1::Binding>(),
    entry::<api::coordination::v1::Lease>(),
    entry::<api::events::v1::Event>(),
    entry::<api::rbac::v1::Role>(),
    entry::<api::rbac::v1::ClusterRole>(),
    entry::<api::rbac::v1::RoleBinding>(),
    entry::<api::rbac::v1::ClusterRoleBinding>(),
    entry::<api::certificates::v1::CertificateSigningRequest>(),
    entry::<api::apps::v1::Deployment>(),
    entry::<api::apps::v1::ReplicaSet>(),
    entry::<api::apps::v1::DaemonSet>(),
    entry::<api::apps::v1::StatefulSet>(),
    entry::<api::apps::v1::ControllerRevision>(),
    entry::<api::batch::v1::Job>(),
    entry::<api::batch::v1::CronJob>(),
    entry::<api::storage::v1::StorageClass>(),
    entry::<api::scheduling::v1::PriorityClass>(),
    entry::<api::policy::v1::PodDisruptionBudget>(),
    entry::<api::policy::v1::Eviction>(),
    entry::<api::networking::v1::NetworkPolicy>(),
    entry::<api::networking::v1::Ingress>(),
    entry::<api::networking::v1::IngressClass>(),
    entry::<api::autoscaling::v1::HorizontalPodAutoscaler>(),
    entry::<api::autoscaling::v1::Scale>(),
    entry::<api::autoscaling::v2::HorizontalPodAutoscaler>(),
    entry::<api::authentication::v1::TokenReview>(),
    entry::<api::authentication::v1::TokenRequest>(),
    entry::<api::authentication::v1::SelfSubjectReview>(),
    entry::<api::authorization::v1::SubjectAccessReview>(),
    entry::<api::authorization::v1::LocalSubjectAccessReview>(),
    entry::<api::authorization::v1::SelfSubjectAccessReview>(),
    entry::<api::authorization::v1::SelfSubjectRulesReview>(),
];

/// The schemas of one group-version's kinds and of everything they refer to, keyed by definition name;
/// empty for a group-version without known kinds.
pub fn components(group: &str, version: &str) -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut kinds = Vec::new();
    for e in ENTRIES
        .iter()
        .filter(|e| e.group == group && e.version == version)
    {
        kinds.push(((e.add)(&mut generator), e.kind));
    }
    let mut schemas = generator.take_definitions(true);
    for (name, schema) in schemas.iter_mut() {
        add_patch_extensions(name, schema);
    }
    for (name, kind) in kinds {
        if let Some(Value::Object(schema)) = schemas.get_mut(name.as_ref()) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": group, "kind": kind, "version": version}]),
            );
        }
    }
    schemas
}

/// Add kube's patch and list extensions to the properties of definition `name` that have them.
fn add_patch_extensions(name: &str, schema: &mut Value) {
    let Some(Value::Object(properties)) = schema.get_mut("properties") else {
        return;
    };
    for field in crate::patch::meta::fields_of(name) {
        let Some(Value::Object(property)) = properties.get_mut(field.1) else {
            continue;
        };
        let mut extensions = Vec::new();
        if !field.strategy().is_empty() {
            extensions.push(("x-kubernetes-patch-strategy", json!(field.strategy())));
        }
        if let Some(key) = field.merge_key() {
            extensions.push(("x-kubernetes-patch-merge-key", json!(key)));
        }
        if !field.list_type().is_empty() {
            extensions.push(("x-kubernetes-list-type", json!(field.list_type())));
        }
        if !field.map_keys().is_empty() {
            extensions.push(("x-kubernetes-list-map-keys", json!(field.map_keys())));
        }
        if extensions.is_empty() {
            continue;
        }
        // OpenAPI 3.0 ignores the siblings of `$ref`: a reference with extensions goes into `allOf`, as
        // kube writes it.
        if let Some(reference) = property.remove("$ref") {
            property.insert("allOf".into(), json!([{"$ref": reference}]));
        }
        for (key, value) in extensions {
            property.insert(key.into(), value);
        }
    }
}

/// Whether a kind has a schema (for tests of the kind tables).
#[cfg(test)]
pub fn has(group: &str, version: &str, kind: &str) -> bool {
    ENTRIES
        .iter()
        .any(|e| e.group == group && e.version == version && e.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_carry_their_gvk_and_refs_resolve_in_the_document() {
        let schemas = components("", "v1");
        let pod = &schemas["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "Pod", "version": "v1"}])
        );
        assert!(
            pod["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("Pod is a collection of containers"))
        );
        // Every reference points into this document's components.
        let text = serde_json::to_string(&schemas).unwrap_or_default();
        for r in text.split("\"$ref\":\"").skip(1) {
            let target = r.split('"').next().unwrap_or_default();
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("reference {target}"));
            assert!(schemas.contains_key(name), "dangling reference {target}");
        }
        let apps = components("apps", "v1");
        assert_eq!(
            apps["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        assert!(!apps.contains_key("io.k8s.api.core.v1.Node"));
        // kube's patch and list extensions, which kubectl's client-side apply reads.
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        let strategy = &apps["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
        assert_eq!(
            strategy["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"
        );
        let tolerations = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["tolerations"];
        assert_eq!(tolerations["x-kubernetes-list-type"], "atomic");
        assert!(tolerations.get("x-kubernetes-patch-strategy").is_none());
        assert!(components("nope.example", "v1").is_empty());
    }
}
