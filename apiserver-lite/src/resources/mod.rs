//! The served resources: their names, scopes, typed schemas (strict decoding), field selectors, defaults,
//! validation and table columns.

pub mod pod;
pub mod table;
pub mod validation;

use serde_json::Value;

use crate::status::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    Node,
    Namespace,
    Event,
    Lease,
}

#[derive(Debug)]
pub struct ResourceDef {
    pub kind_id: Kind,
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources served (`status`, `binding`).
    pub subresources: &'static [&'static str],
    /// Whether `status` is a subresource (then the main resource ignores status changes).
    pub has_status: bool,
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        kind_id: Kind::Pod,
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        subresources: &["status", "binding"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::Node,
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &["status"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::Namespace,
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &["status"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::Event,
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
    ResourceDef {
        kind_id: Kind::Lease,
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
];

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    pub fn verbs(&self) -> &'static [&'static str] {
        VERBS
    }
    pub fn key(&self, ns: Option<&str>, name: &str) -> String {
        match ns {
            Some(ns) if self.namespaced => format!("/registry/{}/{ns}/{name}", self.plural),
            _ => format!("/registry/{}/{name}", self.plural),
        }
    }
    pub fn prefix(&self, ns: Option<&str>) -> String {
        match ns {
            Some(ns) if self.namespaced => format!("/registry/{}/{ns}/", self.plural),
            _ => format!("/registry/{}/", self.plural),
        }
    }
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Fields that `fieldSelector` accepts for this kind.
    pub fn field_selectors(&self) -> &'static [&'static str] {
        match self.kind_id {
            Kind::Pod => &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            Kind::Event => &[
                "metadata.name",
                "metadata.namespace",
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            Kind::Node => &["metadata.name", "spec.unschedulable"],
            Kind::Namespace => &["metadata.name", "status.phase"],
            Kind::Lease => &["metadata.name", "metadata.namespace"],
        }
    }

    /// The value of a selectable field ("" when unset).
    pub fn field_value(&self, obj: &Value, field: &str) -> String {
        if field == "spec.unschedulable" || field == "spec.hostNetwork" {
            let p = format!("/{}", field.replace('.', "/"));
            return obj
                .pointer(&p)
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .to_string();
        }
        if field == "source" {
            return obj
                .pointer("/source/component")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
        }
        let p = format!("/{}", field.replace('.', "/"));
        match obj.pointer(&p) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    }

    /// Round-trip `v` through the k8s-openapi type of this kind: the normalized object (unknown fields dropped).
    pub fn normalize(&self, v: &Value) -> Result<Value, String> {
        use k8s_openapi::api::coordination::v1::Lease;
        use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
        fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(
            v: &Value,
        ) -> Result<Value, String> {
            let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
            serde_json::to_value(t).map_err(|e| e.to_string())
        }
        match self.kind_id {
            Kind::Pod => rt::<Pod>(v),
            Kind::Node => rt::<Node>(v),
            Kind::Namespace => rt::<Namespace>(v),
            Kind::Event => rt::<Event>(v),
            Kind::Lease => rt::<Lease>(v),
        }
    }

    /// Defaults applied on create (after metadata is set).
    pub fn default_on_create(&self, obj: &mut Value) {
        match self.kind_id {
            Kind::Pod => pod::apply_defaults(obj, true),
            Kind::Namespace => {
                obj["spec"] = serde_json::json!({"finalizers": ["kubernetes"]});
                obj["status"] = serde_json::json!({"phase": "Active"});
            }
            Kind::Event => {
                if obj.get("type").is_none() {
                    obj["type"] = Value::String("Normal".into());
                }
                if obj.get("count").is_none() {
                    obj["count"] = Value::from(1);
                }
            }
            _ => {}
        }
    }

    /// Validation of a new object; `[]` when valid.
    pub fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs =
            validation::validate_meta(obj, self.namespaced, self.kind_id == Kind::Namespace);
        if self.kind_id == Kind::Pod {
            errs.extend(pod::validate(obj));
        }
        errs
    }

    /// Validation of an update from `old` to `new`.
    pub fn validate_update(&self, old: &Value, new: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_create(new);
        if self.kind_id == Kind::Pod {
            errs.extend(pod::validate_update(old, new));
        }
        if self.kind_id == Kind::Node {
            let o = old
                .pointer("/spec/podCIDR")
                .and_then(Value::as_str)
                .unwrap_or("");
            let n = new
                .pointer("/spec/podCIDR")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !o.is_empty() && o != n {
                errs.push(FieldError::forbidden(
                    "spec.podCIDR",
                    "node updates may not change podCIDR except from \"\" to valid",
                ));
            }
        }
        errs
    }
}

pub fn find_resource(group: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
}

pub fn by_kind(kind: Kind) -> &'static ResourceDef {
    RESOURCES
        .iter()
        .find(|r| r.kind_id == kind)
        .unwrap_or(&RESOURCES[0])
}
