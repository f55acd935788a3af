//! Server-side printing: `meta.k8s.io/v1 Table` for `kubectl get`.

use serde_json::{Value, json};

use super::{Kind, ResourceDef, pod};

/// kubectl's `duration.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

pub(crate) fn since(ts: Option<&str>) -> String {
    let Some(ts) = ts.filter(|s| !s.is_empty()) else {
        return "<unknown>".into();
    };
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        Err(_) => "<unknown>".into(),
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn or_none(x: &str) -> String {
    if x.is_empty() {
        "<none>".into()
    } else {
        x.to_string()
    }
}

fn col(name: &str, ty: &str, format: &str, desc: &str, priority: i32) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": desc, "priority": priority})
}

pub fn columns(def: &ResourceDef) -> Vec<Value> {
    let name = col(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace.",
        0,
    );
    let age = col(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    );
    match def.kind_id {
        Kind::Pod => vec![
            name,
            col(
                "Ready",
                "string",
                "",
                "The aggregate readiness state of this pod for accepting traffic.",
                0,
            ),
            col(
                "Status",
                "string",
                "",
                "The aggregate status of the containers in this pod.",
                0,
            ),
            col(
                "Restarts",
                "string",
                "",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                0,
            ),
            age,
            col(
                "IP",
                "string",
                "",
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                1,
            ),
            col(
                "Node",
                "string",
                "",
                "NodeName is a request to schedule this pod onto a specific node.",
                1,
            ),
            col(
                "Nominated Node",
                "string",
                "",
                "nominatedNodeName is set when this pod preempts other pods on the node.",
                1,
            ),
            col(
                "Readiness Gates",
                "string",
                "",
                "If specified, all readiness gates will be evaluated for pod readiness.",
                1,
            ),
        ],
        Kind::Node => vec![
            name,
            col("Status", "string", "", "The status of the node", 0),
            col("Roles", "string", "", "The roles of the node", 0),
            age,
            col(
                "Version",
                "string",
                "",
                "Kubelet Version reported by the node.",
                0,
            ),
            col(
                "Internal-IP",
                "string",
                "",
                "List of addresses reachable to the node.",
                1,
            ),
            col(
                "External-IP",
                "string",
                "",
                "List of addresses reachable to the node.",
                1,
            ),
            col(
                "OS-Image",
                "string",
                "",
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
                1,
            ),
            col(
                "Kernel-Version",
                "string",
                "",
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
                1,
            ),
            col(
                "Container-Runtime",
                "string",
                "",
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
                1,
            ),
        ],
        Kind::Namespace => vec![
            name,
            col("Status", "string", "", "The status of the namespace", 0),
            age,
        ],
        Kind::Event => vec![
            col(
                "Last Seen",
                "string",
                "",
                "Time when this Event was last observed.",
                0,
            ),
            col(
                "Type",
                "string",
                "",
                "Type of this event (Normal, Warning), new types could be added in the future.",
                0,
            ),
            col(
                "Reason",
                "string",
                "",
                "This should be a short, machine understandable string that gives the reason for this event being generated.",
                0,
            ),
            col(
                "Object",
                "string",
                "",
                "The object that this event is about.",
                0,
            ),
            col(
                "Subobject",
                "string",
                "",
                "The field of the object that this event is about.",
                1,
            ),
            col(
                "Source",
                "string",
                "",
                "The component reporting this event.",
                1,
            ),
            col(
                "Message",
                "string",
                "",
                "A human-readable description of the status of this operation.",
                0,
            ),
            col(
                "First Seen",
                "string",
                "",
                "The time at which the event was first recorded.",
                1,
            ),
            col(
                "Count",
                "string",
                "",
                "The number of times this event has occurred.",
                1,
            ),
            col(
                "Name",
                "string",
                "name",
                "Name must be unique within a namespace.",
                1,
            ),
        ],
        Kind::ConfigMap => vec![
            name,
            col(
                "Data",
                "string",
                "",
                "The number of keys in data and binaryData.",
                0,
            ),
            age,
        ],
        Kind::Secret => vec![
            name,
            col(
                "Type",
                "string",
                "",
                "Used to facilitate programmatic handling of secret data.",
                0,
            ),
            col("Data", "string", "", "The number of keys in data.", 0),
            age,
        ],
        Kind::Service => vec![
            name,
            col("Type", "string", "", "How the service is exposed.", 0),
            col(
                "Cluster-IP",
                "string",
                "",
                "The IP address of the service.",
                0,
            ),
            col(
                "External-IP",
                "string",
                "",
                "External IPs of the service.",
                0,
            ),
            col(
                "Port(s)",
                "string",
                "",
                "The ports that are exposed by this service.",
                0,
            ),
            age,
            col(
                "Selector",
                "string",
                "",
                "Route service traffic to pods with label keys and values matching this selector.",
                1,
            ),
        ],
        Kind::Endpoints => vec![
            name,
            col("Endpoints", "string", "", "Endpoints of the service.", 0),
            age,
        ],
        Kind::ServiceAccount => vec![
            name,
            col(
                "Secrets",
                "string",
                "",
                "The number of secrets of the service account.",
                0,
            ),
            age,
        ],
        Kind::EventV1 => vec![
            col(
                "Last Seen",
                "string",
                "",
                "Time when this Event was last observed.",
                0,
            ),
            col(
                "Type",
                "string",
                "",
                "Type of this event (Normal, Warning).",
                0,
            ),
            col("Reason", "string", "", "Why the action was taken.", 0),
            col("Object", "string", "", "The object this Event is about.", 0),
            col(
                "Message",
                "string",
                "",
                "A human-readable description of the status of this operation.",
                0,
            ),
        ],
        Kind::Lease => vec![
            name,
            col("Holder", "string", "", "The holder of this lease.", 0),
            age,
        ],
        Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding => {
            crate::authz::kinds::columns(def.kind_id, name, age)
        }
        Kind::CertificateSigningRequest => crate::csr::columns(name, age),
        Kind::Deployment | Kind::ReplicaSet => super::workloads::columns(def.kind_id, name, age),
        Kind::ReplicationController => super::replicationcontroller::columns(name, age),
        Kind::DaemonSet => super::daemonset::columns(name, age),
        Kind::Job => super::job::columns(name, age),
        Kind::CronJob => super::cronjob::columns(name, age),
        Kind::StatefulSet => super::statefulset::columns(name, age),
        Kind::ControllerRevision => super::controllerrevision::columns(name, age),
        Kind::PersistentVolume | Kind::PersistentVolumeClaim | Kind::StorageClass => {
            super::storage::columns(def.kind_id, name, age)
        }
        Kind::PodDisruptionBudget => super::pdb::columns(name, age),
        Kind::LimitRange => super::limitrange::columns(name),
        Kind::HorizontalPodAutoscaler | Kind::HorizontalPodAutoscalerV1 => {
            super::hpa::columns(name, age)
        }
        Kind::NetworkPolicy => super::netpol::columns(name, age),
        Kind::Ingress | Kind::IngressClass => super::ingress::columns(def.kind_id, name, age),
        Kind::ResourceQuota => super::quota::columns(name, age),
        Kind::PriorityClass => super::priorityclass::columns(name, age),
    }
}

pub fn cells(def: &ResourceDef, obj: &Value) -> Vec<Value> {
    let name = s(obj, "/metadata/name").to_string();
    let age = since(
        obj.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str),
    );
    match def.kind_id {
        Kind::Pod => {
            let (ready, status, restarts) = pod::status_columns(obj);
            let restarts_s = match last_restart(obj) {
                Some(ago) if restarts > 0 => format!("{restarts} ({ago} ago)"),
                _ => restarts.to_string(),
            };
            let gates = obj
                .pointer("/spec/readinessGates")
                .and_then(Value::as_array)
                .map(|g| {
                    let total = g.len();
                    let ok = g
                        .iter()
                        .filter(|gate| {
                            let t = s(gate, "/conditionType");
                            obj.pointer("/status/conditions")
                                .and_then(Value::as_array)
                                .is_some_and(|cs| {
                                    cs.iter()
                                        .any(|c| s(c, "/type") == t && s(c, "/status") == "True")
                                })
                        })
                        .count();
                    format!("{ok}/{total}")
                });
            vec![
                json!(name),
                json!(ready),
                json!(status),
                json!(restarts_s),
                json!(age),
                json!(or_none(s(obj, "/status/podIP"))),
                json!(or_none(s(obj, "/spec/nodeName"))),
                json!(or_none(s(obj, "/status/nominatedNodeName"))),
                json!(gates.unwrap_or_else(|| "<none>".into())),
            ]
        }
        Kind::Node => {
            let conds = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut status = match conds
                .iter()
                .find(|c| s(c, "/type") == "Ready")
                .map(|c| s(c, "/status"))
            {
                Some("True") => "Ready".to_string(),
                Some("False") => "NotReady".to_string(),
                _ => "Unknown".to_string(),
            };
            if obj.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                status.push_str(",SchedulingDisabled");
            }
            let mut roles: Vec<String> = Vec::new();
            if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
                for (k, v) in labels {
                    if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                        if !r.is_empty() {
                            roles.push(r.to_string());
                        }
                    } else if k == "kubernetes.io/role"
                        && let Some(r) = v.as_str()
                        && !r.is_empty()
                    {
                        roles.push(r.to_string());
                    }
                }
            }
            roles.sort();
            let addr = |t: &str| {
                obj.pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|x| s(x, "/type") == t))
                    .map(|x| s(x, "/address").to_string())
                    .unwrap_or_default()
            };
            vec![
                json!(name),
                json!(status),
                json!(if roles.is_empty() {
                    "<none>".into()
                } else {
                    roles.join(",")
                }),
                json!(age),
                json!(s(obj, "/status/nodeInfo/kubeletVersion")),
                json!(or_none(&addr("InternalIP"))),
                json!(or_none(&addr("ExternalIP"))),
                json!(or_none(s(obj, "/status/nodeInfo/osImage"))),
                json!(or_none(s(obj, "/status/nodeInfo/kernelVersion"))),
                json!(or_none(s(obj, "/status/nodeInfo/containerRuntimeVersion"))),
            ]
        }
        Kind::Namespace => vec![json!(name), json!(s(obj, "/status/phase")), json!(age)],
        Kind::Event => {
            let first = [s(obj, "/firstTimestamp"), s(obj, "/eventTime")]
                .into_iter()
                .find(|x| !x.is_empty());
            let last = [
                s(obj, "/lastTimestamp"),
                s(obj, "/series/lastObservedTime"),
                s(obj, "/eventTime"),
                s(obj, "/firstTimestamp"),
            ]
            .into_iter()
            .find(|x| !x.is_empty());
            let object = format!(
                "{}/{}",
                s(obj, "/involvedObject/kind").to_lowercase(),
                s(obj, "/involvedObject/name")
            );
            let mut source = s(obj, "/source/component").to_string();
            if source.is_empty() {
                source = s(obj, "/reportingComponent").to_string();
            }
            if !s(obj, "/source/host").is_empty() {
                source = format!("{source}, {}", s(obj, "/source/host"));
            }
            vec![
                json!(since(last)),
                json!(s(obj, "/type")),
                json!(s(obj, "/reason")),
                json!(object),
                json!(s(obj, "/involvedObject/fieldPath")),
                json!(source),
                json!(s(obj, "/message").trim()),
                json!(since(first)),
                json!(
                    obj.get("count")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                        .to_string()
                ),
                json!(name),
            ]
        }
        Kind::ConfigMap => vec![
            json!(name),
            json!(super::config::configmap_data_count(obj)),
            json!(age),
        ],
        Kind::Secret => vec![
            json!(name),
            json!(s(obj, "/type")),
            json!(super::config::secret_data_count(obj)),
            json!(age),
        ],
        Kind::Service => vec![
            json!(name),
            json!(s(obj, "/spec/type")),
            json!(or_none(s(obj, "/spec/clusterIP"))),
            json!(super::service::external_ip_column(obj)),
            json!(super::service::ports_column(obj)),
            json!(age),
            json!(super::service::selector_column(obj)),
        ],
        Kind::Endpoints => vec![
            json!(name),
            json!(super::service::endpoints_column(obj)),
            json!(age),
        ],
        Kind::ServiceAccount => vec![
            json!(name),
            json!(super::config::serviceaccount_secret_count(obj)),
            json!(age),
        ],
        Kind::EventV1 => {
            let last = [
                s(obj, "/series/lastObservedTime"),
                s(obj, "/deprecatedLastTimestamp"),
                s(obj, "/eventTime"),
                s(obj, "/deprecatedFirstTimestamp"),
            ]
            .into_iter()
            .find(|x| !x.is_empty());
            vec![
                json!(since(last)),
                json!(s(obj, "/type")),
                json!(s(obj, "/reason")),
                json!(format!(
                    "{}/{}",
                    s(obj, "/regarding/kind").to_lowercase(),
                    s(obj, "/regarding/name")
                )),
                json!(s(obj, "/note").trim()),
            ]
        }
        Kind::Lease => vec![
            json!(name),
            json!(or_none(s(obj, "/spec/holderIdentity"))),
            json!(age),
        ],
        Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding => {
            crate::authz::kinds::cells(def.kind_id, obj, name, age)
        }
        Kind::CertificateSigningRequest => crate::csr::cells(obj, name, age),
        Kind::Deployment | Kind::ReplicaSet => super::workloads::cells(def.kind_id, obj, name, age),
        Kind::ReplicationController => super::replicationcontroller::cells(obj, name, age),
        Kind::DaemonSet => super::daemonset::cells(obj, name, age),
        Kind::Job => super::job::cells(obj, name, age),
        Kind::CronJob => super::cronjob::cells(obj, name, age),
        Kind::StatefulSet => super::statefulset::cells(obj, name, age),
        Kind::ControllerRevision => super::controllerrevision::cells(obj, name, age),
        Kind::PersistentVolume | Kind::PersistentVolumeClaim | Kind::StorageClass => {
            super::storage::cells(def.kind_id, obj, name, age)
        }
        Kind::PodDisruptionBudget => super::pdb::cells(obj, name, age),
        Kind::LimitRange => super::limitrange::cells(obj, name),
        Kind::HorizontalPodAutoscaler => super::hpa::cells(obj, name, age),
        Kind::HorizontalPodAutoscalerV1 => {
            super::hpa::cells(&super::hpa::convert::to_v2(obj), name, age)
        }
        Kind::NetworkPolicy => super::netpol::cells(obj, name, age),
        Kind::Ingress | Kind::IngressClass => super::ingress::cells(def.kind_id, obj, name, age),
        Kind::ResourceQuota => super::quota::cells(obj, name, age),
        Kind::PriorityClass => super::priorityclass::cells(obj, name, age),
    }
}

fn last_restart(pod: &Value) -> Option<String> {
    let mut latest: Option<i64> = None;
    for list in ["/status/containerStatuses", "/status/initContainerStatuses"] {
        for c in pod
            .pointer(list)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            if let Some(t) = c
                .pointer("/lastState/terminated/finishedAt")
                .and_then(Value::as_str)
                && let Ok(ts) = t.parse::<jiff::Timestamp>()
            {
                latest = Some(latest.map_or(ts.as_second(), |l| l.max(ts.as_second())));
            }
        }
    }
    latest.map(|l| human_duration(jiff::Timestamp::now().as_second() - l))
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

/// A Table of `objs`; `include_object`: "None", "Metadata" (default) or "Object".
pub fn table(
    def: &ResourceDef,
    objs: &[Value],
    rv: Option<String>,
    include_object: &str,
    with_columns: bool,
) -> Value {
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let object = match include_object {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => partial_metadata(o),
            };
            json!({"cells": cells(def, o), "object": object})
        })
        .collect();
    let mut meta = json!({});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv);
    }
    let mut t =
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "rows": rows});
    if with_columns {
        t["columnDefinitions"] = Value::Array(columns(def));
    } else {
        t["columnDefinitions"] = Value::Null;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find_resource;

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    #[test]
    fn pod_table() {
        let def = find_resource("", "pods").expect("pods");
        let pod = json!({"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z", "namespace": "default"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.5", "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
        let t = table(def, &[pod], Some("7".into()), "Metadata", true);
        assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(9));
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "web");
        assert_eq!(cells[1], "1/1");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], "0");
        assert_eq!(cells[5], "10.244.0.5");
        assert_eq!(cells[6], "n1");
        assert_eq!(cells[7], "<none>");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn node_and_event_tables() {
        let def = find_resource("", "nodes").expect("nodes");
        let node = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.32.0-skiff"},
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}});
        let c = cells(def, &node);
        assert_eq!(c[1], "Ready,SchedulingDisabled");
        assert_eq!(c[2], "control-plane");
        assert_eq!(c[4], "v1.32.0-skiff");
        assert_eq!(c[5], "10.0.0.1");
        assert_eq!(c[6], "<none>");
        let def = find_resource("", "events").expect("events");
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "web"}, "reason": "Scheduled", "type": "Normal", "message": "ok"});
        let c = cells(def, &ev);
        assert_eq!(c[3], "pod/web");
        assert_eq!(c[0], "<unknown>");
    }
}
