//! Schema entries of core/v1 Container and EphemeralContainer with their ports, environment (including
//! `valueFrom` and `envFrom`), resources, resize policy, volume mounts and devices.
//! Field numbers, names and repeated-ness are those of `k8s.io/api/core/v1/generated.proto` at kube 1.32
//! (checked by a script against upstream); JSON names are the Go types' json tags.

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        // EphemeralContainerCommon repeats Container's fields with the same numbers.
        "Container" | "EphemeralContainerCommon" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "image", Str),
                r(3, "command", Str),
                r(4, "args", Str),
                f(5, "workingDir", Str),
                r(6, "ports", Msg("ContainerPort")),
                r(19, "envFrom", Msg("EnvFromSource")),
                r(7, "env", Msg("EnvVar")),
                f(8, "resources", Msg("ResourceRequirements")),
                r(23, "resizePolicy", Msg("ContainerResizePolicy")),
                f(24, "restartPolicy", Str),
                r(9, "volumeMounts", Msg("VolumeMount")),
                r(21, "volumeDevices", Msg("VolumeDevice")),
                f(10, "livenessProbe", Msg("Probe")),
                f(11, "readinessProbe", Msg("Probe")),
                f(22, "startupProbe", Msg("Probe")),
                f(12, "lifecycle", Msg("Lifecycle")),
                f(13, "terminationMessagePath", Str),
                f(20, "terminationMessagePolicy", Str),
                f(14, "imagePullPolicy", Str),
                f(15, "securityContext", Msg("SecurityContext")),
                f(16, "stdin", Bool),
                f(17, "stdinOnce", Bool),
                f(18, "tty", Bool),
            ];
            S
        }
        "EphemeralContainer" => {
            const S: &[F] = &[
                f(
                    1,
                    "ephemeralContainerCommon",
                    Inline("EphemeralContainerCommon"),
                ),
                f(2, "targetContainerName", Str),
            ];
            S
        }
        "ContainerPort" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "hostPort", Int),
                f(3, "containerPort", Int),
                f(4, "protocol", Str),
                f(5, "hostIP", Str),
            ];
            S
        }
        "EnvFromSource" => {
            const S: &[F] = &[
                f(1, "prefix", Str),
                f(2, "configMapRef", Msg("ConfigMapEnvSource")),
                f(3, "secretRef", Msg("SecretEnvSource")),
            ];
            S
        }
        "EnvVar" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "value", Str),
                f(3, "valueFrom", Msg("EnvVarSource")),
            ];
            S
        }
        "ConfigMapEnvSource" => {
            const S: &[F] = &[
                f(1, "localObjectReference", Inline("LocalObjectReference")),
                f(2, "optional", OptBool),
            ];
            S
        }
        "SecretEnvSource" => {
            const S: &[F] = &[
                f(1, "localObjectReference", Inline("LocalObjectReference")),
                f(2, "optional", OptBool),
            ];
            S
        }
        "EnvVarSource" => {
            const S: &[F] = &[
                f(1, "fieldRef", Msg("ObjectFieldSelector")),
                f(2, "resourceFieldRef", Msg("ResourceFieldSelector")),
                f(3, "configMapKeyRef", Msg("ConfigMapKeySelector")),
                f(4, "secretKeyRef", Msg("SecretKeySelector")),
            ];
            S
        }
        "ObjectFieldSelector" => {
            const S: &[F] = &[f(1, "apiVersion", Str), f(2, "fieldPath", Str)];
            S
        }
        "ResourceFieldSelector" => {
            const S: &[F] = &[
                f(1, "containerName", Str),
                f(2, "resource", Str),
                f(3, "divisor", Quantity),
            ];
            S
        }
        "ConfigMapKeySelector" => {
            const S: &[F] = &[
                f(1, "localObjectReference", Inline("LocalObjectReference")),
                f(2, "key", Str),
                f(3, "optional", OptBool),
            ];
            S
        }
        "SecretKeySelector" => {
            const S: &[F] = &[
                f(1, "localObjectReference", Inline("LocalObjectReference")),
                f(2, "key", Str),
                f(3, "optional", OptBool),
            ];
            S
        }
        "ContainerResizePolicy" => {
            const S: &[F] = &[f(1, "resourceName", Str), f(2, "restartPolicy", Str)];
            S
        }
        "VolumeMount" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "readOnly", Bool),
                f(7, "recursiveReadOnly", Str),
                f(3, "mountPath", Str),
                f(4, "subPath", Str),
                f(5, "mountPropagation", Str),
                f(6, "subPathExpr", Str),
            ];
            S
        }
        "VolumeDevice" => {
            const S: &[F] = &[f(1, "name", Str), f(2, "devicePath", Str)];
            S
        }
        "ResourceRequirements" => {
            const S: &[F] = &[
                f(1, "limits", MapQty),
                f(2, "requests", MapQty),
                r(3, "claims", Msg("ResourceClaim")),
            ];
            S
        }
        "ResourceClaim" => {
            const S: &[F] = &[f(1, "name", Str), f(2, "request", Str)];
            S
        }
        _ => &[],
    }
}
