use serde_json::{Value, json};

use super::{accepts, encode, watch_frame, watchable};
use crate::protobuf::decode_known;

fn config_map() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "cm",
            "namespace": "default",
            "uid": "0b7c3a2e-1111-4222-8333-944445555666",
            "resourceVersion": "42",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "x"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u", "controller": true}],
            "finalizers": ["example.com/f"],
            "managedFields": [{
                "manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                "time": "2026-01-01T00:00:01Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {"f:k": {}}}
            }]
        },
        "data": {"k": "v", "other": "line1\nline2"},
        "binaryData": {"bin": "AAEC"},
        "immutable": true
    })
}

#[test]
fn objects_round_trip_through_the_decoder() {
    let cm = config_map();
    let bytes = encode(&cm).expect("a complete ConfigMap encodes");
    assert!(bytes.starts_with(b"k8s\x00"));
    assert_eq!(decode_known(&bytes).expect("decodes"), cm);

    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "n1", "namespace": "kube-node-lease", "resourceVersion": "7"},
        "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                 "renewTime": "2026-01-01T00:00:00.123456Z", "leaseTransitions": 2}
    });
    assert_eq!(
        decode_known(&encode(&lease).expect("lease")).expect("decodes"),
        lease
    );

    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "p.1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p", "uid": "u", "apiVersion": "v1"},
        "reason": "Scheduled", "message": "Successfully assigned default/p to n1",
        "source": {"component": "default-scheduler"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:05Z",
        "count": 3, "type": "Normal", "reportingComponent": "default-scheduler"
    });
    assert_eq!(
        decode_known(&encode(&event).expect("event")).expect("decodes"),
        event
    );

    let status = json!({
        "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "message": "too old resource version: 1 (5)", "reason": "Expired", "code": 410,
        "details": {"causes": [{"reason": "FieldValueInvalid", "message": "bad", "field": "spec.x"}]}
    });
    assert_eq!(
        decode_known(&encode(&status).expect("status")).expect("decodes"),
        status
    );
}

#[test]
fn negative_numbers_use_ten_byte_varints() {
    let mut ev =
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}, "count": -1});
    let bytes = encode(&ev).expect("event");
    assert_eq!(decode_known(&bytes).expect("decodes")["count"], json!(-1));
    ev["count"] = json!(i32::MAX);
    assert_eq!(
        decode_known(&encode(&ev).expect("event")).expect("decodes")["count"],
        json!(i32::MAX)
    );
}

/// `protoc --decode_raw` is an independent decoder: the field numbers below are those of the Kubernetes
/// API (runtime.Unknown typeMeta = 1, raw = 2; ConfigMap metadata = 1, data = 2; ObjectMeta name = 1,
/// namespace = 3, resourceVersion = 6, creationTimestamp = 8 {seconds = 1}, labels = 11 {key = 1,
/// value = 2}), not read from this crate's schema table.
#[test]
fn protoc_decodes_the_envelope_with_kubernetes_field_numbers() {
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default", "resourceVersion": "42",
                     "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "web"}},
        "data": {"k": "v"}
    });
    let bytes = encode(&cm).expect("encodes");
    let text = decode_raw(&bytes[4..]);
    let expected = r#"1 {
  1: "v1"
  2: "ConfigMap"
}
2 {
  1 {
    1: "cm"
    3: "default"
    6: "42"
    8 {
      1: 1767225600
    }
    11 {
      1: "app"
      2: "web"
    }
  }
  2 {
    1: "k"
    2: "v"
  }
}
3: ""
4: ""
"#;
    assert_eq!(text, expected);
}

fn decode_raw(bytes: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("protoc")
        .arg("--decode_raw")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("protoc (protobuf-compiler) is installed");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write");
    let out = child.wait_with_output().expect("protoc");
    assert!(out.status.success(), "protoc could not parse the bytes");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lists_and_watch_frames() {
    let mut item = config_map();
    item.as_object_mut().map(|m| m.remove("kind"));
    let list = json!({
        "apiVersion": "v1", "kind": "ConfigMapList",
        "metadata": {"resourceVersion": "43", "continue": "tok", "remainingItemCount": 5},
        "items": [item.clone(), item]
    });
    let decoded = decode_known(&encode(&list).expect("list")).expect("decodes");
    assert_eq!(decoded["metadata"], list["metadata"]);
    assert_eq!(decoded["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(decoded["items"][1]["data"], config_map()["data"]);

    let frame = watch_frame("MODIFIED", &config_map()).expect("frame");
    let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    assert_eq!(len, frame.len() - 4);
    // WatchEvent{type = 1, object = 2 {raw = 1}}: protoc shows the type, and the raw object starts with the
    // envelope magic.
    let text = decode_raw(&frame[4..]);
    assert!(text.starts_with("1: \"MODIFIED\"\n2 {\n"), "{text}");
    let event = &frame[4..];
    // type field: tag 0x0a, len 8, "MODIFIED"; object: tag 0x12, len varint, then raw: tag 0x0a, len varint.
    assert_eq!(&event[..10], b"\x0a\x08MODIFIED");
    let mut pos = 10;
    assert_eq!(event[pos], 0x12);
    pos += 1;
    while event[pos] & 0x80 != 0 {
        pos += 1;
    }
    pos += 1;
    assert_eq!(event[pos], 0x0a);
    pos += 1;
    while event[pos] & 0x80 != 0 {
        pos += 1;
    }
    pos += 1;
    assert_eq!(
        decode_known(&event[pos..]).expect("inner object"),
        config_map()
    );
}

#[test]
fn incomplete_schemas_fall_back_to_json() {
    // A field the table does not know: no protobuf (the caller answers in JSON).
    let mut cm = config_map();
    cm["unknownField"] = json!(1);
    assert!(encode(&cm).is_none());
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x"}], "futureField": {"x": 1}}});
    assert!(encode(&pod).is_none());
    // A kind not served in protobuf, and events.k8s.io's Event (a different message than core's).
    assert!(
        encode(&json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "n"}}))
            .is_none()
    );
    assert!(
        encode(
            &json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}})
        )
        .is_none()
    );
    // A wrong JSON type.
    let mut cm = config_map();
    cm["data"]["k"] = json!(5);
    assert!(encode(&cm).is_none());
    // A simple pod is within the table.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "args": ["sleep", "1"]}], "nodeName": "n1"},
        "status": {"phase": "Pending"}});
    assert_eq!(
        decode_known(&encode(&pod).expect("pod")).expect("decodes"),
        pod
    );
}

#[test]
fn accept_headers() {
    assert!(accepts(
        "application/vnd.kubernetes.protobuf,application/json"
    ));
    assert!(accepts("application/vnd.kubernetes.protobuf"));
    assert!(!accepts("application/json"));
    assert!(!accepts(
        "application/json, application/vnd.kubernetes.protobuf"
    ));
    assert!(!accepts(
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    ));
    assert!(!accepts(
        "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
    ));
    assert!(!accepts(""));
    assert!(watchable("v1", "ConfigMap"));
    assert!(watchable("coordination.k8s.io/v1", "Lease"));
    assert!(!watchable("v1", "Pod"));
    assert!(!watchable("events.k8s.io/v1", "Event"));
}

#[test]
fn nodes_and_running_pods_round_trip() {
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "unschedulable": true,
                 "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule",
                             "timeAdded": "2026-01-01T00:00:00Z"}]},
        "status": {
            "capacity": {"cpu": "2", "memory": "4028Mi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "4028Mi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "ok", "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.1",
                         "osImage": "Debian", "containerRuntimeVersion": "containerd://1.6",
                         "kubeletVersion": "v1.32.0-skiff", "operatingSystem": "linux",
                         "architecture": "amd64"},
            "images": [{"names": ["busybox:1.35"], "sizeBytes": 4000000}]
        }
    });
    assert_eq!(
        decode_known(&encode(&node).expect("node")).expect("decodes"),
        node
    );

    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "n1"},
        "status": {"phase": "Running", "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}],
                   "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}], "qosClass": "BestEffort",
                   "startTime": "2026-01-01T00:00:00Z",
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:01Z"}]}
    });
    assert_eq!(
        decode_known(&encode(&pod).expect("pod")).expect("decodes"),
        pod
    );
}

#[test]
fn eviction_request_bodies_keep_a_zero_grace_period() {
    // kubectl drain sends policy/v1 Evictions in protobuf; gracePeriodSeconds = 0 must survive decoding.
    let eviction = json!({
        "metadata": {"name": "p", "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 0, "preconditions": {"uid": "u"}, "dryRun": ["All"]}
    });
    let raw =
        super::message("Eviction", eviction.as_object().expect("object"), true).expect("encodes");
    let mut type_meta = Vec::new();
    super::put_str(&mut type_meta, 1, "policy/v1");
    super::put_str(&mut type_meta, 2, "Eviction");
    let mut body = b"k8s\x00".to_vec();
    super::put_bytes(&mut body, 1, &type_meta);
    super::put_bytes(&mut body, 2, &raw);
    let decoded = crate::protobuf::decode(&body).expect("request decoder accepts Evictions");
    assert_eq!(decoded["deleteOptions"], eviction["deleteOptions"]);
    assert_eq!(decoded["kind"], "Eviction");
}

#[test]
fn services_with_load_balancer_status_and_affinity_round_trip() {
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "resourceVersion": "9"},
        "spec": {
            "type": "LoadBalancer", "selector": {"app": "web"}, "clusterIP": "10.96.0.20",
            "clusterIPs": ["10.96.0.20"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}],
            "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
            "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
            "allocateLoadBalancerNodePorts": true, "loadBalancerSourceRanges": ["192.0.2.0/24"]
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.2", "ipMode": "VIP",
            "ports": [{"port": 80, "protocol": "TCP", "error": "x"}]}]},
            "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2,
                "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "Ok", "message": "m"}]}
    });
    let bytes = encode(&svc).expect("a LoadBalancer Service is within the table");
    assert_eq!(decode_known(&bytes).expect("decodes"), svc);
}
