//! Round trips of pods and workloads using most of the core/v1 pod schema, and the request decoder's
//! refusal of fields the schema does not know.

use serde_json::{Value, json};

use super::{encode, message, put_bytes, put_str, put_varint_field};
use crate::protobuf::{decode, decode_known};

/// The `k8s\0` envelope of `obj`, for kinds that responses do not (yet) use protobuf for.
fn envelope(obj: &Value) -> Vec<u8> {
    let api_version = obj["apiVersion"].as_str().expect("apiVersion");
    let kind = obj["kind"].as_str().expect("kind");
    let raw = message(kind, obj.as_object().expect("object"), true).expect("every field is known");
    wrap(api_version, kind, &raw)
}

fn wrap(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut type_meta = Vec::new();
    put_str(&mut type_meta, 1, api_version);
    put_str(&mut type_meta, 2, kind);
    let mut out = b"k8s\x00".to_vec();
    put_bytes(&mut out, 1, &type_meta);
    put_bytes(&mut out, 2, raw);
    out
}

fn pod_spec() -> Value {
    json!({
        "initContainers": [{
            "name": "init", "image": "busybox:1.36", "command": ["sh", "-c", "true"],
            "restartPolicy": "Always",
            "startupProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 2}
        }],
        "containers": [{
            "name": "web",
            "image": "nginx:1.27",
            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
            "env": [
                {"name": "PLAIN", "value": "x"},
                {"name": "NODE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
                {"name": "CPU", "valueFrom": {"resourceFieldRef": {"containerName": "web", "resource": "limits.cpu", "divisor": "1m"}}},
                {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k", "optional": false}}},
                {"name": "SEC", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}}
            ],
            "envFrom": [
                {"prefix": "C_", "configMapRef": {"name": "cfg"}},
                {"secretRef": {"name": "sec", "optional": true}}
            ],
            "resources": {
                "limits": {"cpu": "500m", "memory": "256Mi"},
                "requests": {"cpu": "100m"},
                "claims": [{"name": "gpu", "request": "one"}]
            },
            "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}],
            "volumeMounts": [
                {"name": "data", "mountPath": "/data", "subPathExpr": "$(NODE)", "mountPropagation": "HostToContainer"},
                {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true, "recursiveReadOnly": "IfPossible"}
            ],
            "volumeDevices": [{"name": "block", "devicePath": "/dev/xvda"}],
            "livenessProbe": {
                "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP",
                            "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                "initialDelaySeconds": 3, "timeoutSeconds": 1, "periodSeconds": 10,
                "successThreshold": 1, "failureThreshold": 3, "terminationGracePeriodSeconds": 5
            },
            "readinessProbe": {"tcpSocket": {"port": 80}},
            "startupProbe": {"grpc": {"port": 9090, "service": "health"}},
            "lifecycle": {
                "postStart": {"exec": {"command": ["sh", "-c", "echo hi"]}},
                "preStop": {"sleep": {"seconds": 5}}
            },
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "imagePullPolicy": "IfNotPresent",
            "securityContext": {
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                "privileged": false,
                "seLinuxOptions": {"user": "u", "role": "r", "type": "t", "level": "s0"},
                "runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": true,
                "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                "procMount": "Default",
                "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/a.json"},
                "appArmorProfile": {"type": "RuntimeDefault"}
            }
        }],
        "ephemeralContainers": [{"name": "debug", "image": "busybox", "targetContainerName": "web", "stdin": true, "tty": true}],
        "volumes": [
            {"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
            {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "k", "path": "k.txt", "mode": 256}], "defaultMode": 420, "optional": true}},
            {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 384}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": "pvc", "readOnly": true}},
            {"name": "nfs", "nfs": {"server": "nfs.example", "path": "/exports"}},
            {"name": "csi", "csi": {"driver": "csi.example.com", "readOnly": true, "fsType": "ext4",
                                    "volumeAttributes": {"size": "1"}, "nodePublishSecretRef": {"name": "csi-sec"}}},
            {"name": "img", "image": {"reference": "registry.example/data:1", "pullPolicy": "IfNotPresent"}},
            {"name": "proj", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 3600, "path": "token"}},
                {"clusterTrustBundle": {"signerName": "example.com/signer", "labelSelector": {"matchLabels": {"a": "b"}}, "path": "ca.pem"}},
                {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                                           {"path": "cpu", "resourceFieldRef": {"containerName": "web", "resource": "requests.cpu"}}]}},
                {"configMap": {"name": "cfg"}},
                {"secret": {"name": "sec", "items": [{"key": "password", "path": "pw"}]}}
            ]}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {
                "metadata": {"labels": {"type": "scratch"}},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                         "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"}
            }}},
            {"name": "dapi", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "None",
        "dnsConfig": {"nameservers": ["10.0.0.10"], "searches": ["svc.cluster.local"], "options": [{"name": "ndots", "value": "2"}]},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "serviceAccountName": "web",
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "shareProcessNamespace": true,
        "securityContext": {
            "runAsUser": 1000, "fsGroup": 2000, "supplementalGroups": [3000, 4000],
            "supplementalGroupsPolicy": "Strict", "fsGroupChangePolicy": "OnRootMismatch",
            "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}],
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        "imagePullSecrets": [{"name": "regcred"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}
                ]},
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 10, "preference": {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n9"]}]}}
                ]
            },
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname",
                                    "matchLabelKeys": ["pod-template-hash"]}
            }]},
            "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
                "namespaces": ["default"], "topologyKey": "zone"
            }]}
        },
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
        "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["db.local"]}],
        "priorityClassName": "high",
        "priority": 1000,
        "readinessGates": [{"conditionType": "example.com/ready"}],
        "runtimeClassName": "kata",
        "overhead": {"cpu": "250m"},
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}}, "minDomains": 2,
            "nodeAffinityPolicy": "Honor", "nodeTaintsPolicy": "Ignore", "matchLabelKeys": ["pod-template-hash"]
        }],
        "setHostnameAsFQDN": true,
        "os": {"name": "linux"},
        "hostUsers": false,
        "schedulingGates": [{"name": "example.com/wait"}],
        "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "gpu-template"}],
        "resources": {"limits": {"memory": "1Gi"}}
    })
}

fn rich_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default", "uid": "u-1", "resourceVersion": "9",
                     "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "web"}},
        "spec": pod_spec(),
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:01Z",
                 "reason": "Scheduled", "message": "ok"}
            ],
            "hostIP": "192.0.2.10", "hostIPs": [{"ip": "192.0.2.10"}],
            "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}, {"ip": "fd00::5"}],
            "startTime": "2026-01-01T00:00:01Z",
            "qosClass": "Burstable",
            "resize": "InProgress",
            "initContainerStatuses": [{
                "name": "init", "ready": true, "restartCount": 0, "image": "busybox:1.36", "imageID": "sha256:1",
                "containerID": "containerd://a", "started": true,
                "state": {"running": {"startedAt": "2026-01-01T00:00:02Z"}}
            }],
            "containerStatuses": [{
                "name": "web", "ready": true, "restartCount": 2, "image": "nginx:1.27",
                "imageID": "docker.io/library/nginx@sha256:2", "containerID": "containerd://b", "started": true,
                "state": {"running": {"startedAt": "2026-01-01T00:00:04Z"}},
                "lastState": {"terminated": {"exitCode": 137, "signal": 9, "reason": "OOMKilled",
                                             "startedAt": "2026-01-01T00:00:02Z", "finishedAt": "2026-01-01T00:00:03Z",
                                             "containerID": "containerd://c"}},
                "allocatedResources": {"cpu": "100m"},
                "resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "100m"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data", "recursiveReadOnly": "Disabled"}],
                "user": {"linux": {"uid": 1000, "gid": 1000, "supplementalGroups": [1000, 3000]}},
                "allocatedResourcesStatus": [{"name": "claim:gpu", "resources": [{"resourceID": "gpu-0", "health": "Healthy"}]}]
            }],
            "ephemeralContainerStatuses": [{
                "name": "debug", "restartCount": 0, "image": "busybox", "imageID": "",
                "state": {"waiting": {"reason": "ContainerCreating"}}
            }],
            "resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": "web-0-gpu-abc"}]
        }
    })
}

/// `v` without empty strings, which a protobuf round trip cannot keep (proto2 strings have no "set but
/// empty" in the decoder's JSON, and Go's JSON omits them too).
fn without_empty_strings(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| x.as_str() != Some(""));
        for x in m.values_mut() {
            *x = without_empty_strings(x.take());
        }
    } else if let Value::Array(a) = &mut v {
        for x in a.iter_mut() {
            *x = without_empty_strings(x.take());
        }
    }
    v
}

#[test]
fn a_rich_pod_round_trips_and_is_accepted_as_a_request() {
    let pod = rich_pod();
    let bytes = encode(&pod).expect("every field of the pod is in the schema");
    let expected = without_empty_strings(pod);
    assert_eq!(decode_known(&bytes).expect("decodes"), expected);
    // The request decoder refuses unknown fields: a complete pod passes it unchanged.
    let req = decode(&bytes).expect("a complete pod is a valid request body");
    assert_eq!(req, expected);
    // Pointer booleans keep an explicit false (it differs from unset); plain ones leave it out.
    assert_eq!(req["spec"]["automountServiceAccountToken"], json!(false));
    assert_eq!(req["spec"]["enableServiceLinks"], json!(false));
    assert_eq!(req["spec"]["hostUsers"], json!(false));
    let sc = &req["spec"]["containers"][0]["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], json!(false));
    assert_eq!(sc["privileged"], json!(false));
    assert_eq!(
        req["spec"]["containers"][0]["env"][3]["valueFrom"]["configMapKeyRef"]["optional"],
        json!(false)
    );
    assert_eq!(req["spec"]["volumes"][2]["configMap"]["name"], "cfg");
    assert_eq!(
        req["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"],
        "http"
    );
}

#[test]
fn a_deployment_with_a_rich_template_round_trips() {
    let deploy = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "generation": 3},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}}, "spec": pod_spec()},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
            "revisionHistoryLimit": 5,
            "progressDeadlineSeconds": 600
        },
        "status": {"observedGeneration": 3, "replicas": 3, "readyReplicas": 2,
                   "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                                   "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    });
    let bytes = envelope(&deploy);
    assert_eq!(decode_known(&bytes).expect("decodes"), deploy);
    assert_eq!(decode(&bytes).expect("a valid request body"), deploy);
}

#[test]
fn jobs_with_failure_and_success_policies_round_trip() {
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {
            "completions": 3, "completionMode": "Indexed", "suspend": false,
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [1, 42]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
            ]},
            "successPolicy": {"rules": [{"succeededIndexes": "0-1", "succeededCount": 1}]},
            "template": {"spec": {"containers": [{"name": "main", "image": "busybox"}], "restartPolicy": "Never"}}
        }
    });
    assert_eq!(decode(&envelope(&job)).expect("a valid request body"), job);
}

#[test]
fn unknown_field_numbers_of_known_messages_are_refused_in_requests() {
    // Pod{spec = PodSpec{containers = [Container{name = "c"}], 99: 1}}: field 99 is no PodSpec field.
    let mut container = Vec::new();
    put_str(&mut container, 1, "c");
    let mut spec = Vec::new();
    put_bytes(&mut spec, 2, &container);
    put_varint_field(&mut spec, 99, 1);
    let mut pod = Vec::new();
    put_bytes(&mut pod, 2, &spec);
    let body = wrap("v1", "Pod", &pod);
    assert_eq!(
        decode(&body).expect_err("unknown field"),
        "protobuf field 99 of PodSpec is not supported by this server; send JSON"
    );
    // Responses skip what they do not know.
    let v = decode_known(&body).expect("responses skip unknown fields");
    assert_eq!(v["spec"]["containers"][0]["name"], "c");

    // Deeper: an unknown field inside a volume source of a Deployment's template.
    let mut local_ref = Vec::new();
    put_str(&mut local_ref, 1, "x");
    let mut cm = Vec::new();
    put_bytes(&mut cm, 1, &local_ref);
    put_str(&mut cm, 42, "surprise");
    let mut source = Vec::new();
    put_bytes(&mut source, 19, &cm);
    let mut volume = Vec::new();
    put_str(&mut volume, 1, "v");
    put_bytes(&mut volume, 2, &source);
    let mut spec = Vec::new();
    put_bytes(&mut spec, 1, &volume);
    let mut template = Vec::new();
    put_bytes(&mut template, 2, &spec);
    let mut dspec = Vec::new();
    put_bytes(&mut dspec, 3, &template);
    let mut deploy = Vec::new();
    put_bytes(&mut deploy, 2, &dspec);
    assert_eq!(
        decode(&wrap("apps/v1", "Deployment", &deploy)).expect_err("unknown field"),
        "protobuf field 42 of ConfigMapVolumeSource is not supported by this server; send JSON"
    );

    // A known field with the wrong wire type is refused too, not dropped.
    let mut meta = Vec::new();
    put_varint_field(&mut meta, 1, 7);
    let mut ns = Vec::new();
    put_bytes(&mut ns, 1, &meta);
    let err = decode(&wrap("v1", "Namespace", &ns)).expect_err("wrong wire type");
    assert!(err.contains("field 1 of ObjectMeta (name)"), "{err}");
}
