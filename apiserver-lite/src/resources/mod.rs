//! The served resources: their names, scopes, typed schemas (strict decoding), field selectors, defaults,
//! validation and table columns.

pub mod config;
pub mod controllerrevision;
pub mod cronjob;
pub mod daemonset;
pub mod default_class;
pub mod event_v1;
pub mod hpa;
pub mod ingress;
pub mod job;
pub mod limitrange;
pub mod netpol;
pub mod pdb;
pub mod pod;
pub mod priorityclass;
pub mod quota;
pub mod replicationcontroller;
pub mod service;
pub mod statefulset;
pub mod storage;
pub mod table;
pub mod validation;
pub mod workloads;

use serde_json::Value;

use crate::status::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// autoscaling/v2 (see `hpa`; the stored form).
    HorizontalPodAutoscaler,
    /// autoscaling/v1 over the same store keys, converted on read and write (`hpa::convert`).
    HorizontalPodAutoscalerV1,
    Pod,
    Node,
    Namespace,
    Event,
    Lease,
    ConfigMap,
    Secret,
    Service,
    Endpoints,
    ServiceAccount,
    /// events.k8s.io/v1 Event, stored as core/v1 events (see `event_v1`).
    EventV1,
    // rbac.authorization.k8s.io/v1 (schemas, columns and validation live in `crate::authz::kinds`).
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
    /// certificates.k8s.io/v1 (see `crate::csr`).
    CertificateSigningRequest,
    // apps/v1 (defaults, validation and columns live in `workloads`; the `scale` subresource in `crate::scale`).
    Deployment,
    ReplicaSet,
    /// apps/v1 (see `daemonset`).
    DaemonSet,
    /// batch/v1 (see `job`).
    Job,
    /// batch/v1 (see `cronjob`).
    CronJob,
    /// apps/v1 (see `statefulset`).
    StatefulSet,
    /// apps/v1 (see `controllerrevision`).
    ControllerRevision,
    // core/v1 and storage.k8s.io/v1 storage (defaults, validation and columns live in `storage`).
    PersistentVolume,
    PersistentVolumeClaim,
    StorageClass,
    /// policy/v1 (see `pdb`; its status is the disruption controller's, read by `crate::eviction`).
    PodDisruptionBudget,
    /// core/v1 (see `limitrange`; enforced by its LimitRanger admission).
    LimitRange,
    /// networking.k8s.io/v1 (see `netpol`; enforced by the agent).
    NetworkPolicy,
    // networking.k8s.io/v1 (see `ingress`; stored and validated, no controller routes them).
    Ingress,
    IngressClass,
    /// core/v1 (see `quota`; charged by its admission, recomputed by `crate::controllers::quota`).
    ResourceQuota,
    /// scheduling.k8s.io/v1 (see `priorityclass`; resolved into pods by its Priority admission).
    PriorityClass,
    /// core/v1 (see `replicationcontroller`; run by `crate::controllers::replicaset`, scaled by `crate::scale`).
    ReplicationController,
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
        subresources: &[
            "status",
            "binding",
            "eviction",
            "log",
            "exec",
            "attach",
            "portforward",
            "ephemeralcontainers",
        ],
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
    ResourceDef {
        kind_id: Kind::ConfigMap,
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
    ResourceDef {
        kind_id: Kind::Secret,
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
    ResourceDef {
        kind_id: Kind::Service,
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        subresources: &["status"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::Endpoints,
        group: "",
        version: "v1",
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
    ResourceDef {
        kind_id: Kind::ServiceAccount,
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        subresources: &["token"],
        has_status: false,
    },
    ResourceDef {
        kind_id: Kind::EventV1,
        group: "events.k8s.io",
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
        kind_id: Kind::Role,
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        singular: "role",
        kind: "Role",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
    ResourceDef {
        kind_id: Kind::ClusterRole,
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterroles",
        singular: "clusterrole",
        kind: "ClusterRole",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
    ResourceDef {
        kind_id: Kind::RoleBinding,
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        singular: "rolebinding",
        kind: "RoleBinding",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
    ResourceDef {
        kind_id: Kind::ClusterRoleBinding,
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        kind: "ClusterRoleBinding",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
    ResourceDef {
        kind_id: Kind::CertificateSigningRequest,
        group: "certificates.k8s.io",
        version: "v1",
        plural: "certificatesigningrequests",
        singular: "certificatesigningrequest",
        kind: "CertificateSigningRequest",
        namespaced: false,
        short_names: &["csr"],
        categories: &[],
        subresources: &["approval", "status"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::Deployment,
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        subresources: &["status", "scale"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::ReplicaSet,
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        subresources: &["status", "scale"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::ReplicationController,
        group: "",
        version: "v1",
        plural: "replicationcontrollers",
        singular: "replicationcontroller",
        kind: "ReplicationController",
        namespaced: true,
        short_names: &["rc"],
        categories: &["all"],
        subresources: &["status", "scale"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::DaemonSet,
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        singular: "daemonset",
        kind: "DaemonSet",
        namespaced: true,
        short_names: &["ds"],
        categories: &["all"],
        subresources: &["status"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::Job,
        group: "batch",
        version: "v1",
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short_names: &[],
        categories: &["all"],
        subresources: &["status"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::CronJob,
        group: "batch",
        version: "v1",
        plural: "cronjobs",
        singular: "cronjob",
        kind: "CronJob",
        namespaced: true,
        short_names: &["cj"],
        categories: &["all"],
        subresources: &["status"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::StatefulSet,
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        short_names: &["sts"],
        categories: &["all"],
        subresources: &["status", "scale"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::ControllerRevision,
        group: "apps",
        version: "v1",
        plural: "controllerrevisions",
        singular: "controllerrevision",
        kind: "ControllerRevision",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
    ResourceDef {
        kind_id: Kind::PersistentVolume,
        group: "",
        version: "v1",
        plural: "persistentvolumes",
        singular: "persistentvolume",
        kind: "PersistentVolume",
        namespaced: false,
        short_names: &["pv"],
        categories: &[],
        subresources: &["status"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::PersistentVolumeClaim,
        group: "",
        version: "v1",
        plural: "persistentvolumeclaims",
        singular: "persistentvolumeclaim",
        kind: "PersistentVolumeClaim",
        namespaced: true,
        short_names: &["pvc"],
        categories: &[],
        subresources: &["status"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::StorageClass,
        group: "storage.k8s.io",
        version: "v1",
        plural: "storageclasses",
        singular: "storageclass",
        kind: "StorageClass",
        namespaced: false,
        short_names: &["sc"],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
    ResourceDef {
        kind_id: Kind::PodDisruptionBudget,
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        kind: "PodDisruptionBudget",
        namespaced: true,
        short_names: &["pdb"],
        categories: &[],
        subresources: &["status"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::LimitRange,
        group: "",
        version: "v1",
        plural: "limitranges",
        singular: "limitrange",
        kind: "LimitRange",
        namespaced: true,
        short_names: &["limits"],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
    ResourceDef {
        kind_id: Kind::NetworkPolicy,
        group: "networking.k8s.io",
        version: "v1",
        plural: "networkpolicies",
        singular: "networkpolicy",
        kind: "NetworkPolicy",
        namespaced: true,
        short_names: &["netpol"],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
    ResourceDef {
        kind_id: Kind::Ingress,
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        singular: "ingress",
        kind: "Ingress",
        namespaced: true,
        short_names: &["ing"],
        categories: &[],
        subresources: &["status"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::IngressClass,
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingressclasses",
        singular: "ingressclass",
        kind: "IngressClass",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
    ResourceDef {
        kind_id: Kind::ResourceQuota,
        group: "",
        version: "v1",
        plural: "resourcequotas",
        singular: "resourcequota",
        kind: "ResourceQuota",
        namespaced: true,
        short_names: &["quota"],
        categories: &[],
        subresources: &["status"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::PriorityClass,
        group: "scheduling.k8s.io",
        version: "v1",
        plural: "priorityclasses",
        singular: "priorityclass",
        kind: "PriorityClass",
        namespaced: false,
        short_names: &["pc"],
        categories: &[],
        subresources: &[],
        has_status: false,
    },
    // autoscaling: v2 first, the preferred version; v1 shares its storage (`hpa::convert`).
    ResourceDef {
        kind_id: Kind::HorizontalPodAutoscaler,
        group: "autoscaling",
        version: "v2",
        plural: "horizontalpodautoscalers",
        singular: "horizontalpodautoscaler",
        kind: "HorizontalPodAutoscaler",
        namespaced: true,
        short_names: &["hpa"],
        categories: &["all"],
        subresources: &["status"],
        has_status: true,
    },
    ResourceDef {
        kind_id: Kind::HorizontalPodAutoscalerV1,
        group: "autoscaling",
        version: "v1",
        plural: "horizontalpodautoscalers",
        singular: "horizontalpodautoscaler",
        kind: "HorizontalPodAutoscaler",
        namespaced: true,
        short_names: &["hpa"],
        categories: &["all"],
        subresources: &["status"],
        has_status: true,
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
    /// The store key segment of this resource: the plural. events.k8s.io events share the core/v1
    /// events' keys and are converted on read and write (`event_v1`).
    pub fn storage_name(&self) -> &'static str {
        self.plural
    }
    pub fn key(&self, ns: Option<&str>, name: &str) -> String {
        match ns {
            Some(ns) if self.namespaced => format!("/registry/{}/{ns}/{name}", self.storage_name()),
            _ => format!("/registry/{}/{name}", self.storage_name()),
        }
    }
    pub fn prefix(&self, ns: Option<&str>) -> String {
        match ns {
            Some(ns) if self.namespaced => format!("/registry/{}/{ns}/", self.storage_name()),
            _ => format!("/registry/{}/", self.storage_name()),
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
            Kind::Secret => &["metadata.name", "metadata.namespace", "type"],
            Kind::Service => &[
                "metadata.name",
                "metadata.namespace",
                "spec.clusterIP",
                "spec.type",
            ],
            Kind::ConfigMap | Kind::Endpoints | Kind::ServiceAccount | Kind::Deployment => {
                &["metadata.name", "metadata.namespace"]
            }
            Kind::ReplicaSet | Kind::ReplicationController => {
                &["metadata.name", "metadata.namespace", "status.replicas"]
            }
            Kind::DaemonSet | Kind::StatefulSet | Kind::ControllerRevision => {
                &["metadata.name", "metadata.namespace"]
            }
            Kind::Job => &["metadata.name", "metadata.namespace", "status.successful"],
            Kind::CronJob => &["metadata.name", "metadata.namespace"],
            Kind::PersistentVolumeClaim | Kind::PodDisruptionBudget => {
                &["metadata.name", "metadata.namespace"]
            }
            Kind::LimitRange => &["metadata.name", "metadata.namespace"],
            Kind::NetworkPolicy => &["metadata.name", "metadata.namespace"],
            Kind::Ingress => &["metadata.name", "metadata.namespace"],
            Kind::IngressClass => &["metadata.name"],
            Kind::ResourceQuota => &["metadata.name", "metadata.namespace"],
            Kind::PersistentVolume | Kind::StorageClass => &["metadata.name"],
            Kind::PriorityClass => &["metadata.name"],
            Kind::HorizontalPodAutoscaler | Kind::HorizontalPodAutoscalerV1 => {
                &["metadata.name", "metadata.namespace"]
            }
            Kind::EventV1 => &[
                "metadata.name",
                "metadata.namespace",
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "regarding.apiVersion",
                "regarding.resourceVersion",
                "regarding.fieldPath",
                "reason",
                "reportingController",
                "type",
            ],
            Kind::Node => &["metadata.name", "spec.unschedulable"],
            Kind::Namespace => &["metadata.name", "status.phase"],
            Kind::Lease
            | Kind::Role
            | Kind::ClusterRole
            | Kind::RoleBinding
            | Kind::ClusterRoleBinding => &["metadata.name", "metadata.namespace"],
            Kind::CertificateSigningRequest => &["metadata.name", "spec.signerName"],
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
        if matches!(self.kind_id, Kind::ReplicaSet | Kind::ReplicationController)
            && field == "status.replicas"
        {
            // kube formats the int32 (0 when unset).
            return obj
                .pointer("/status/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .to_string();
        }
        if self.kind_id == Kind::Job && field == "status.successful" {
            // kube formats `status.succeeded` (0 when unset).
            return obj
                .pointer("/status/succeeded")
                .and_then(Value::as_i64)
                .unwrap_or(0)
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
            Kind::ConfigMap => rt::<k8s_openapi::api::core::v1::ConfigMap>(v),
            Kind::Secret => rt::<k8s_openapi::api::core::v1::Secret>(v),
            Kind::Service => rt::<k8s_openapi::api::core::v1::Service>(v),
            Kind::Endpoints => rt::<k8s_openapi::api::core::v1::Endpoints>(v),
            Kind::ServiceAccount => rt::<k8s_openapi::api::core::v1::ServiceAccount>(v),
            Kind::EventV1 => rt::<k8s_openapi::api::events::v1::Event>(v),
            Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding => {
                crate::authz::kinds::normalize(self.kind_id, v)
            }
            Kind::CertificateSigningRequest => crate::csr::normalize(v),
            Kind::Deployment | Kind::ReplicaSet => workloads::normalize(self.kind_id, v),
            Kind::DaemonSet => daemonset::normalize(v),
            Kind::Job => job::normalize(v),
            Kind::CronJob => cronjob::normalize(v),
            Kind::StatefulSet => statefulset::normalize(v),
            Kind::ControllerRevision => controllerrevision::normalize(v),
            Kind::PersistentVolume | Kind::PersistentVolumeClaim | Kind::StorageClass => {
                storage::normalize(self.kind_id, v)
            }
            Kind::PodDisruptionBudget => pdb::normalize(v),
            Kind::LimitRange => limitrange::normalize(v),
            Kind::HorizontalPodAutoscaler => hpa::normalize(v),
            Kind::HorizontalPodAutoscalerV1 => hpa::convert::normalize_v1(v),
            Kind::NetworkPolicy => netpol::normalize(v),
            Kind::Ingress | Kind::IngressClass => ingress::normalize(self.kind_id, v),
            Kind::ResourceQuota => quota::normalize(v),
            Kind::PriorityClass => priorityclass::normalize(v),
            Kind::ReplicationController => replicationcontroller::normalize(v),
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
            Kind::Secret => config::secret_defaults(obj),
            Kind::Service => service::defaults(obj),
            Kind::Deployment | Kind::ReplicaSet => {
                workloads::defaults(self.kind_id, obj);
                workloads::reset_status(self.kind_id, obj);
            }
            Kind::DaemonSet => daemonset::prepare_create(obj),
            Kind::Job => job::prepare_create(obj),
            Kind::CronJob => cronjob::prepare_create(obj),
            Kind::StatefulSet => statefulset::prepare_create(obj),
            Kind::PersistentVolume | Kind::PersistentVolumeClaim | Kind::StorageClass => {
                storage::prepare_create(self.kind_id, obj)
            }
            Kind::PodDisruptionBudget => pdb::prepare_create(obj),
            Kind::LimitRange => limitrange::defaults(obj),
            Kind::HorizontalPodAutoscaler => hpa::prepare_create(obj),
            Kind::HorizontalPodAutoscalerV1 => hpa::convert::prepare_create_v1(obj),
            Kind::NetworkPolicy => netpol::defaults(obj),
            Kind::Ingress | Kind::IngressClass => ingress::prepare_create(self.kind_id, obj),
            Kind::ResourceQuota => quota::prepare_create(obj),
            Kind::PriorityClass => priorityclass::defaults(obj),
            Kind::ReplicationController => replicationcontroller::prepare_create(obj),
            _ => {}
        }
    }

    /// Defaults applied on update of the main resource (`old` is the stored object).
    pub fn default_on_update(&self, old: &Value, new: &mut Value) {
        match self.kind_id {
            Kind::Secret => config::secret_defaults(new),
            Kind::Service => {
                service::defaults(new);
                service::keep_allocated(old, new);
                service::drop_type_dependent(old, new);
            }
            Kind::Deployment | Kind::ReplicaSet => workloads::defaults(self.kind_id, new),
            Kind::DaemonSet => daemonset::prepare_update(old, new),
            Kind::Job => job::defaults(new),
            Kind::CronJob => cronjob::defaults(new),
            Kind::StatefulSet => statefulset::defaults(new),
            Kind::LimitRange => limitrange::defaults(new),
            Kind::HorizontalPodAutoscaler => hpa::defaults(new),
            Kind::HorizontalPodAutoscalerV1 => {
                let mut v2 = hpa::convert::to_v2(new);
                hpa::defaults(&mut v2);
                *new = hpa::convert::to_v1(&v2);
            }
            Kind::NetworkPolicy => netpol::defaults(new),
            Kind::PriorityClass => priorityclass::defaults(new),
            Kind::Pod => priorityclass::admission::keep_on_update(old, new),
            Kind::Ingress | Kind::IngressClass => ingress::defaults(self.kind_id, new),
            Kind::ReplicationController => replicationcontroller::defaults(new),
            Kind::PersistentVolume | Kind::PersistentVolumeClaim | Kind::StorageClass => {
                storage::prepare_update(self.kind_id, old, new)
            }
            _ => {}
        }
    }

    /// Validation of a new object; `[]` when valid.
    pub fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_object(obj);
        if self.kind_id == Kind::Pod {
            errs.extend(pod::validate_new(obj));
        }
        if self.kind_id == Kind::CronJob {
            errs.extend(cronjob::validate_create(obj));
        }
        if self.kind_id == Kind::Ingress {
            errs.extend(ingress::validate_create(obj));
        }
        errs
    }

    /// What every version of an object must satisfy, created or updated.
    fn validate_object(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs =
            validation::validate_meta(obj, self.namespaced, self.kind_id == Kind::Namespace);
        if self.kind_id == Kind::Pod {
            errs.extend(pod::validate(obj));
        }
        match self.kind_id {
            Kind::ConfigMap => errs.extend(config::validate_configmap(obj)),
            Kind::Secret => errs.extend(config::validate_secret(obj)),
            Kind::Service => errs.extend(service::validate(obj)),
            Kind::Endpoints => errs.extend(service::validate_endpoints(obj)),
            Kind::CertificateSigningRequest => errs.extend(crate::csr::validate(obj)),
            Kind::Deployment | Kind::ReplicaSet => {
                errs.extend(workloads::validate(self.kind_id, obj))
            }
            Kind::DaemonSet => errs.extend(daemonset::validate(obj)),
            Kind::Job => errs.extend(job::validate(obj)),
            Kind::StatefulSet => errs.extend(statefulset::validate(obj)),
            Kind::ControllerRevision => errs.extend(controllerrevision::validate(obj)),
            Kind::PersistentVolume | Kind::PersistentVolumeClaim | Kind::StorageClass => {
                errs.extend(storage::validate(self.kind_id, obj))
            }
            Kind::PodDisruptionBudget => errs.extend(pdb::validate(obj)),
            Kind::LimitRange => errs.extend(limitrange::validate(obj)),
            Kind::HorizontalPodAutoscaler => errs.extend(hpa::validate(obj)),
            Kind::HorizontalPodAutoscalerV1 => {
                errs.extend(hpa::validate(&hpa::convert::to_v2(obj)))
            }
            Kind::NetworkPolicy => errs.extend(netpol::validate(obj)),
            Kind::IngressClass => errs.extend(ingress::validate_class(obj)),
            Kind::ResourceQuota => errs.extend(quota::validate(obj)),
            Kind::PriorityClass => errs.extend(priorityclass::validate(obj)),
            Kind::ReplicationController => errs.extend(replicationcontroller::validate(obj)),
            _ => {}
        }
        crate::authz::kinds::validate(self.kind_id, obj, &mut errs);
        errs
    }

    /// The object a write of the `status` subresource proposes: the stored object with the body's status
    /// (and, for Deployments and ReplicaSets, the body's annotations, as kube's status strategies allow).
    pub fn status_update(&self, cur: &Value, body: &Value) -> Value {
        let mut n = cur.clone();
        match body.get("status") {
            Some(s) if !s.is_null() => n["status"] = s.clone(),
            _ => {
                if let Some(m) = n.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        if matches!(self.kind_id, Kind::Deployment | Kind::ReplicaSet) {
            workloads::status_metadata(self.kind_id, body, &mut n);
        }
        if self.kind_id == Kind::Service {
            service::default_ip_mode(&mut n);
        }
        if matches!(
            self.kind_id,
            Kind::PersistentVolume | Kind::PersistentVolumeClaim
        ) {
            storage::status_update(self.kind_id, cur, &mut n);
        }
        n
    }

    /// Whether an update from `old` to `new` of the main resource bumps `metadata.generation`.
    pub fn bumps_generation(&self, old: &Value, new: &Value) -> bool {
        match self.kind_id {
            Kind::Deployment | Kind::ReplicaSet => {
                workloads::bumps_generation(self.kind_id, old, new)
            }
            _ => old.get("spec") != new.get("spec"),
        }
    }

    /// Validation of an update from `old` to `new`.
    pub fn validate_update(&self, old: &Value, new: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_object(new);
        if self.kind_id == Kind::Pod {
            errs.extend(pod::validate_update(old, new));
        }
        match self.kind_id {
            Kind::ConfigMap => errs.extend(config::validate_immutable(
                old,
                new,
                &["data", "binaryData"],
            )),
            Kind::Secret => errs.extend(config::validate_secret_update(old, new)),
            Kind::Service => errs.extend(service::validate_update(old, new)),
            Kind::CertificateSigningRequest => errs.extend(crate::csr::validate_update(old, new)),
            Kind::Deployment | Kind::ReplicaSet => {
                errs.extend(workloads::validate_update(old, new))
            }
            Kind::DaemonSet => errs.extend(daemonset::validate_update(old, new)),
            Kind::Job => errs.extend(job::validate_update(old, new)),
            Kind::CronJob => errs.extend(cronjob::validate_update(old, new)),
            Kind::StatefulSet => errs.extend(statefulset::validate_update(old, new)),
            Kind::ControllerRevision => errs.extend(controllerrevision::validate_update(old, new)),
            Kind::PriorityClass => errs.extend(priorityclass::validate_update(old, new)),
            Kind::Ingress => errs.extend(ingress::validate_update(old, new)),
            Kind::IngressClass => errs.extend(ingress::validate_class_update(old, new)),
            Kind::PersistentVolume | Kind::PersistentVolumeClaim | Kind::StorageClass => {
                errs.extend(storage::validate_update(self.kind_id, old, new))
            }
            _ => {}
        }
        errs.extend(crate::authz::kinds::validate_update(self.kind_id, old, new));
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

/// The served resource of one group-version (`find_resource` answers the preferred version).
pub fn find_resource_version(
    group: &str,
    version: &str,
    plural: &str,
) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

pub fn by_kind(kind: Kind) -> &'static ResourceDef {
    RESOURCES
        .iter()
        .find(|r| r.kind_id == kind)
        .unwrap_or(&RESOURCES[0])
}
