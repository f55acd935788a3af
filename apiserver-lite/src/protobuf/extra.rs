//! Schema entries added for protobuf responses (`crate::protobuf_encode`) and the Eviction and TokenRequest
//! request bodies: meta/v1 list, status, managed-fields and delete-options messages, coordination/v1 Lease, core/v1 Event
//! and Node, the namespace conditions, the pod status IP lists and the Service status and session affinity. Field numbers are the Kubernetes API's
//! (the `generated.proto` of each group).

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "SessionAffinityConfig" => {
            const S: &[F] = &[f(1, "clientIP", Msg("ClientIPConfig"))];
            S
        }
        "ClientIPConfig" => {
            const S: &[F] = &[f(1, "timeoutSeconds", Int)];
            S
        }
        "ServiceStatus" => {
            const S: &[F] = &[
                f(1, "loadBalancer", Msg("LoadBalancerStatus")),
                r(2, "conditions", Msg("Condition")),
            ];
            S
        }
        "LoadBalancerStatus" => {
            const S: &[F] = &[r(1, "ingress", Msg("LoadBalancerIngress"))];
            S
        }
        "LoadBalancerIngress" => {
            const S: &[F] = &[
                f(1, "ip", Str),
                f(2, "hostname", Str),
                f(3, "ipMode", Str),
                r(4, "ports", Msg("PortStatus")),
            ];
            S
        }
        "PortStatus" => {
            const S: &[F] = &[f(1, "port", Int), f(2, "protocol", Str), f(3, "error", Str)];
            S
        }
        // meta/v1 Condition.
        "Condition" => {
            const S: &[F] = &[
                f(1, "type", Str),
                f(2, "status", Str),
                f(3, "observedGeneration", Int),
                f(4, "lastTransitionTime", Time),
                f(5, "reason", Str),
                f(6, "message", Str),
            ];
            S
        }
        "ManagedFieldsEntry" => {
            const S: &[F] = &[
                f(1, "manager", Str),
                f(2, "operation", Str),
                f(3, "apiVersion", Str),
                f(4, "time", Time),
                f(6, "fieldsType", Str),
                f(7, "fieldsV1", Fields),
                f(8, "subresource", Str),
            ];
            S
        }
        "ListMeta" => {
            const S: &[F] = &[
                f(1, "selfLink", Str),
                f(2, "resourceVersion", Str),
                f(3, "continue", Str),
                f(4, "remainingItemCount", Int),
            ];
            S
        }
        "Status" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ListMeta")),
                f(2, "status", Str),
                f(3, "message", Str),
                f(4, "reason", Str),
                f(5, "details", Msg("StatusDetails")),
                f(6, "code", Int),
            ];
            S
        }
        "StatusDetails" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "group", Str),
                f(3, "kind", Str),
                r(4, "causes", Msg("StatusCause")),
                f(5, "retryAfterSeconds", Int),
                f(6, "uid", Str),
            ];
            S
        }
        "StatusCause" => {
            const S: &[F] = &[
                f(1, "reason", Str),
                f(2, "message", Str),
                f(3, "field", Str),
            ];
            S
        }
        // authentication.k8s.io/v1 TokenRequest (kubectl create token, the serviceaccounts/token subresource).
        "TokenRequest" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("TokenRequestSpec")),
                f(3, "status", Msg("TokenRequestStatus")),
            ];
            S
        }
        "TokenRequestSpec" => {
            const S: &[F] = &[
                r(1, "audiences", Str),
                f(4, "expirationSeconds", Int),
                f(3, "boundObjectRef", Msg("BoundObjectReference")),
            ];
            S
        }
        "BoundObjectReference" => {
            const S: &[F] = &[
                f(1, "kind", Str),
                f(2, "apiVersion", Str),
                f(3, "name", Str),
                f(4, "uid", Str),
            ];
            S
        }
        "TokenRequestStatus" => {
            const S: &[F] = &[f(1, "token", Str), f(2, "expirationTimestamp", Time)];
            S
        }
        // policy/v1 Eviction (kubectl drain), with the meta/v1 DeleteOptions it carries.
        "Eviction" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "deleteOptions", Msg("DeleteOptions")),
            ];
            S
        }
        "DeleteOptions" => {
            const S: &[F] = &[
                f(1, "gracePeriodSeconds", Int),
                f(2, "preconditions", Msg("Preconditions")),
                f(3, "orphanDependents", OptBool),
                f(4, "propagationPolicy", Str),
                r(5, "dryRun", Str),
                f(
                    6,
                    "ignoreStoreReadErrorWithClusterBreakingPotential",
                    OptBool,
                ),
            ];
            S
        }
        "Preconditions" => {
            const S: &[F] = &[f(1, "uid", Str), f(2, "resourceVersion", Str)];
            S
        }
        // coordination.k8s.io/v1 (node heartbeats, leader election).
        "Lease" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("LeaseSpec")),
            ];
            S
        }
        "LeaseSpec" => {
            const S: &[F] = &[
                f(1, "holderIdentity", Str),
                f(2, "leaseDurationSeconds", Int),
                f(3, "acquireTime", Time),
                f(4, "renewTime", Time),
                f(5, "leaseTransitions", Int),
                f(6, "strategy", Str),
                f(7, "preferredHolder", Str),
            ];
            S
        }
        // core/v1 Event (not events.k8s.io/v1, whose fields differ).
        "Event" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "involvedObject", Msg("ObjectReference")),
                f(3, "reason", Str),
                f(4, "message", Str),
                f(5, "source", Msg("EventSource")),
                f(6, "firstTimestamp", Time),
                f(7, "lastTimestamp", Time),
                f(8, "count", Int),
                f(9, "type", Str),
                f(10, "eventTime", Time),
                f(11, "series", Msg("EventSeries")),
                f(12, "action", Str),
                f(13, "related", Msg("ObjectReference")),
                f(14, "reportingComponent", Str),
                f(15, "reportingInstance", Str),
            ];
            S
        }
        "EventSource" => {
            const S: &[F] = &[f(1, "component", Str), f(2, "host", Str)];
            S
        }
        "EventSeries" => {
            const S: &[F] = &[f(1, "count", Int), f(2, "lastObservedTime", Time)];
            S
        }
        "NamespaceCondition" => {
            const S: &[F] = &[
                f(1, "type", Str),
                f(2, "status", Str),
                f(4, "lastTransitionTime", Time),
                f(5, "reason", Str),
                f(6, "message", Str),
            ];
            S
        }
        "PodIP" | "HostIP" => {
            const S: &[F] = &[f(1, "ip", Str)];
            S
        }
        // core/v1 Node, as a node agent registers and updates it.
        "Node" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("NodeSpec")),
                f(3, "status", Msg("NodeStatus")),
            ];
            S
        }
        "NodeSpec" => {
            const S: &[F] = &[
                f(1, "podCIDR", Str),
                f(2, "externalID", Str),
                f(3, "providerID", Str),
                f(4, "unschedulable", Bool),
                r(5, "taints", Msg("Taint")),
                f(6, "configSource", Msg("NodeConfigSource")),
                r(7, "podCIDRs", Str),
            ];
            S
        }
        "Taint" => {
            const S: &[F] = &[
                f(1, "key", Str),
                f(2, "value", Str),
                f(3, "effect", Str),
                f(4, "timeAdded", Time),
            ];
            S
        }
        "NodeStatus" => {
            const S: &[F] = &[
                f(1, "capacity", MapQty),
                f(2, "allocatable", MapQty),
                f(3, "phase", Str),
                r(4, "conditions", Msg("NodeCondition")),
                r(5, "addresses", Msg("NodeAddress")),
                f(6, "daemonEndpoints", Msg("NodeDaemonEndpoints")),
                f(7, "nodeInfo", Msg("NodeSystemInfo")),
                r(8, "images", Msg("ContainerImage")),
                r(9, "volumesInUse", Str),
                r(10, "volumesAttached", Msg("AttachedVolume")),
                f(11, "config", Msg("NodeConfigStatus")),
                r(12, "runtimeHandlers", Msg("NodeRuntimeHandler")),
                f(13, "features", Msg("NodeFeatures")),
            ];
            S
        }
        "NodeCondition" => {
            const S: &[F] = &[
                f(1, "type", Str),
                f(2, "status", Str),
                f(3, "lastHeartbeatTime", Time),
                f(4, "lastTransitionTime", Time),
                f(5, "reason", Str),
                f(6, "message", Str),
            ];
            S
        }
        "NodeAddress" => {
            const S: &[F] = &[f(1, "type", Str), f(2, "address", Str)];
            S
        }
        "NodeDaemonEndpoints" => {
            const S: &[F] = &[f(1, "kubeletEndpoint", Msg("DaemonEndpoint"))];
            S
        }
        "DaemonEndpoint" => {
            const S: &[F] = &[f(1, "Port", Int)];
            S
        }
        "NodeSystemInfo" => {
            const S: &[F] = &[
                f(1, "machineID", Str),
                f(2, "systemUUID", Str),
                f(3, "bootID", Str),
                f(4, "kernelVersion", Str),
                f(5, "osImage", Str),
                f(6, "containerRuntimeVersion", Str),
                f(7, "kubeletVersion", Str),
                f(8, "kubeProxyVersion", Str),
                f(9, "operatingSystem", Str),
                f(10, "architecture", Str),
            ];
            S
        }
        "ContainerImage" => {
            const S: &[F] = &[r(1, "names", Str), f(2, "sizeBytes", Int)];
            S
        }
        _ => &[],
    }
}
