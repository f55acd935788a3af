//! kube 1.32's tables of Deployments and ReplicaSets (`deploymentColumnDefinitions`, `printDeployment`,
//! `replicaSetColumnDefinitions`, `printReplicaSet`).

use serde_json::{Value, json};

use super::super::Kind;
use super::selector::selector_string;

fn col(name: &str, ty: &str, desc: &str, priority: i32) -> Value {
    json!({"name": name, "type": ty, "format": "", "description": desc, "priority": priority})
}

fn int(obj: &Value, p: &str) -> i64 {
    obj.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// kube's `layoutContainerCells`: container names and images, comma-joined.
pub(crate) fn container_cells(obj: &Value) -> (String, String) {
    let cs = obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let field = |f: &str| {
        cs.iter()
            .map(|c| c.get(f).and_then(Value::as_str).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(",")
    };
    (field("name"), field("image"))
}

/// Column definitions (kube's `deploymentColumnDefinitions` / `replicaSetColumnDefinitions`).
pub fn columns(kind: Kind, name: Value, age: Value) -> Vec<Value> {
    let containers = col(
        "Containers",
        "string",
        "Names of each container in the template.",
        1,
    );
    let images = col(
        "Images",
        "string",
        "Images referenced by each container in the template.",
        1,
    );
    if kind == Kind::Deployment {
        vec![
            name,
            col("Ready", "string", "Number of the pod with ready state", 0),
            col(
                "Up-to-date",
                "string",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                0,
            ),
            col(
                "Available",
                "string",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                0,
            ),
            age,
            containers,
            images,
            col(
                "Selector",
                "string",
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
                1,
            ),
        ]
    } else {
        vec![
            name,
            col(
                "Desired",
                "integer",
                "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
                0,
            ),
            col(
                "Current",
                "integer",
                "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
                0,
            ),
            col(
                "Ready",
                "integer",
                "The number of ready replicas for this replica set.",
                0,
            ),
            age,
            containers,
            images,
            col(
                "Selector",
                "string",
                "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
                1,
            ),
        ]
    }
}

/// Row cells (kube's `printDeployment` / `printReplicaSet`, wide).
pub fn cells(kind: Kind, obj: &Value, name: String, age: String) -> Vec<Value> {
    let (names, images) = container_cells(obj);
    let selector = selector_string(obj.pointer("/spec/selector"));
    let desired = int(obj, "/spec/replicas");
    if kind == Kind::Deployment {
        vec![
            json!(name),
            json!(format!("{}/{desired}", int(obj, "/status/readyReplicas"))),
            json!(int(obj, "/status/updatedReplicas")),
            json!(int(obj, "/status/availableReplicas")),
            json!(age),
            json!(names),
            json!(images),
            json!(selector),
        ]
    } else {
        vec![
            json!(name),
            json!(desired),
            json!(int(obj, "/status/replicas")),
            json!(int(obj, "/status/readyReplicas")),
            json!(age),
            json!(names),
            json!(images),
            // kube's `metav1.FormatLabelSelector`.
            json!(if selector.is_empty() {
                "<none>".to_string()
            } else {
                selector
            }),
        ]
    }
}
