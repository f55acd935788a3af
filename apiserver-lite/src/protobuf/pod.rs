//! Schema entries of core/v1 Pod, PodSpec, PodStatus and the pod-level messages they hold (security context, DNS, host
//! aliases, readiness and scheduling gates, resource claims, conditions).
//! Field numbers, names and repeated-ness are those of `k8s.io/api/core/v1/generated.proto` at kube 1.32
//! (checked by a script against upstream); JSON names are the Go types' json tags.

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "Pod" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("PodSpec")),
                f(3, "status", Msg("PodStatus")),
            ];
            S
        }
        "PodSpec" => {
            const S: &[F] = &[
                r(1, "volumes", Msg("Volume")),
                r(20, "initContainers", Msg("Container")),
                r(2, "containers", Msg("Container")),
                r(34, "ephemeralContainers", Msg("EphemeralContainer")),
                f(3, "restartPolicy", Str),
                f(4, "terminationGracePeriodSeconds", Int),
                f(5, "activeDeadlineSeconds", Int),
                f(6, "dnsPolicy", Str),
                f(7, "nodeSelector", MapStr),
                f(8, "serviceAccountName", Str),
                f(9, "serviceAccount", Str),
                f(21, "automountServiceAccountToken", OptBool),
                f(10, "nodeName", Str),
                f(11, "hostNetwork", Bool),
                f(12, "hostPID", Bool),
                f(13, "hostIPC", Bool),
                f(27, "shareProcessNamespace", OptBool),
                f(14, "securityContext", Msg("PodSecurityContext")),
                r(15, "imagePullSecrets", Msg("LocalObjectReference")),
                f(16, "hostname", Str),
                f(17, "subdomain", Str),
                f(18, "affinity", Msg("Affinity")),
                f(19, "schedulerName", Str),
                r(22, "tolerations", Msg("Toleration")),
                r(23, "hostAliases", Msg("HostAlias")),
                f(24, "priorityClassName", Str),
                f(25, "priority", Int),
                f(26, "dnsConfig", Msg("PodDNSConfig")),
                r(28, "readinessGates", Msg("PodReadinessGate")),
                f(29, "runtimeClassName", Str),
                f(30, "enableServiceLinks", OptBool),
                f(31, "preemptionPolicy", Str),
                f(32, "overhead", MapQty),
                r(
                    33,
                    "topologySpreadConstraints",
                    Msg("TopologySpreadConstraint"),
                ),
                f(35, "setHostnameAsFQDN", OptBool),
                f(36, "os", Msg("PodOS")),
                f(37, "hostUsers", OptBool),
                r(38, "schedulingGates", Msg("PodSchedulingGate")),
                r(39, "resourceClaims", Msg("PodResourceClaim")),
                f(40, "resources", Msg("ResourceRequirements")),
            ];
            S
        }
        "PodStatus" => {
            const S: &[F] = &[
                f(1, "phase", Str),
                r(2, "conditions", Msg("PodCondition")),
                f(3, "message", Str),
                f(4, "reason", Str),
                f(11, "nominatedNodeName", Str),
                f(5, "hostIP", Str),
                r(16, "hostIPs", Msg("HostIP")),
                // kube 1.33 (PodObservedGenerationTracking): skiff already writes it.
                f(17, "observedGeneration", Int),
                f(6, "podIP", Str),
                r(12, "podIPs", Msg("PodIP")),
                f(7, "startTime", Time),
                r(10, "initContainerStatuses", Msg("ContainerStatus")),
                r(8, "containerStatuses", Msg("ContainerStatus")),
                f(9, "qosClass", Str),
                r(13, "ephemeralContainerStatuses", Msg("ContainerStatus")),
                f(14, "resize", Str),
                r(15, "resourceClaimStatuses", Msg("PodResourceClaimStatus")),
            ];
            S
        }
        "PodSecurityContext" => {
            const S: &[F] = &[
                f(1, "seLinuxOptions", Msg("SELinuxOptions")),
                f(8, "windowsOptions", Msg("WindowsSecurityContextOptions")),
                f(2, "runAsUser", Int),
                f(6, "runAsGroup", Int),
                f(3, "runAsNonRoot", OptBool),
                r(4, "supplementalGroups", Int),
                f(12, "supplementalGroupsPolicy", Str),
                f(5, "fsGroup", Int),
                r(7, "sysctls", Msg("Sysctl")),
                f(9, "fsGroupChangePolicy", Str),
                f(10, "seccompProfile", Msg("SeccompProfile")),
                f(11, "appArmorProfile", Msg("AppArmorProfile")),
                f(13, "seLinuxChangePolicy", Str),
            ];
            S
        }
        "LocalObjectReference" => {
            const S: &[F] = &[f(1, "name", Str)];
            S
        }
        "Toleration" => {
            const S: &[F] = &[
                f(1, "key", Str),
                f(2, "operator", Str),
                f(3, "value", Str),
                f(4, "effect", Str),
                f(5, "tolerationSeconds", Int),
            ];
            S
        }
        "HostAlias" => {
            const S: &[F] = &[f(1, "ip", Str), r(2, "hostnames", Str)];
            S
        }
        "PodDNSConfig" => {
            const S: &[F] = &[
                r(1, "nameservers", Str),
                r(2, "searches", Str),
                r(3, "options", Msg("PodDNSConfigOption")),
            ];
            S
        }
        "PodDNSConfigOption" => {
            const S: &[F] = &[f(1, "name", Str), f(2, "value", Str)];
            S
        }
        "PodReadinessGate" => {
            const S: &[F] = &[f(1, "conditionType", Str)];
            S
        }
        "PodOS" => {
            const S: &[F] = &[f(1, "name", Str)];
            S
        }
        "PodSchedulingGate" => {
            const S: &[F] = &[f(1, "name", Str)];
            S
        }
        "PodResourceClaim" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(3, "resourceClaimName", Str),
                f(4, "resourceClaimTemplateName", Str),
            ];
            S
        }
        "PodResourceClaimStatus" => {
            const S: &[F] = &[f(1, "name", Str), f(2, "resourceClaimName", Str)];
            S
        }
        "PodCondition" => {
            const S: &[F] = &[
                f(1, "type", Str),
                f(2, "status", Str),
                f(3, "lastProbeTime", Time),
                f(4, "lastTransitionTime", Time),
                f(5, "reason", Str),
                f(6, "message", Str),
                // kube 1.33 (PodObservedGenerationTracking).
                f(7, "observedGeneration", Int),
            ];
            S
        }
        "Sysctl" => {
            const S: &[F] = &[f(1, "name", Str), f(2, "value", Str)];
            S
        }
        _ => &[],
    }
}
