//! Schema entries of core/v1 probes, lifecycle hooks and the container security context.
//! Field numbers, names and repeated-ness are those of `k8s.io/api/core/v1/generated.proto` at kube 1.32
//! (checked by a script against upstream); JSON names are the Go types' json tags.

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "Probe" => {
            const S: &[F] = &[
                f(1, "handler", Inline("ProbeHandler")),
                f(2, "initialDelaySeconds", Int),
                f(3, "timeoutSeconds", Int),
                f(4, "periodSeconds", Int),
                f(5, "successThreshold", Int),
                f(6, "failureThreshold", Int),
                f(7, "terminationGracePeriodSeconds", Int),
            ];
            S
        }
        "ProbeHandler" => {
            const S: &[F] = &[
                f(1, "exec", Msg("ExecAction")),
                f(2, "httpGet", Msg("HTTPGetAction")),
                f(3, "tcpSocket", Msg("TCPSocketAction")),
                f(4, "grpc", Msg("GRPCAction")),
            ];
            S
        }
        "Lifecycle" => {
            const S: &[F] = &[
                f(1, "postStart", Msg("LifecycleHandler")),
                f(2, "preStop", Msg("LifecycleHandler")),
            ];
            S
        }
        "LifecycleHandler" => {
            const S: &[F] = &[
                f(1, "exec", Msg("ExecAction")),
                f(2, "httpGet", Msg("HTTPGetAction")),
                f(3, "tcpSocket", Msg("TCPSocketAction")),
                f(4, "sleep", Msg("SleepAction")),
            ];
            S
        }
        "ExecAction" => {
            const S: &[F] = &[r(1, "command", Str)];
            S
        }
        "HTTPGetAction" => {
            const S: &[F] = &[
                f(1, "path", Str),
                f(2, "port", IntOrStr),
                f(3, "host", Str),
                f(4, "scheme", Str),
                r(5, "httpHeaders", Msg("HTTPHeader")),
            ];
            S
        }
        "HTTPHeader" => {
            const S: &[F] = &[f(1, "name", Str), f(2, "value", Str)];
            S
        }
        "TCPSocketAction" => {
            const S: &[F] = &[f(1, "port", IntOrStr), f(2, "host", Str)];
            S
        }
        "GRPCAction" => {
            const S: &[F] = &[f(1, "port", Int), f(2, "service", Str)];
            S
        }
        "SleepAction" => {
            const S: &[F] = &[f(1, "seconds", Int)];
            S
        }
        "SecurityContext" => {
            const S: &[F] = &[
                f(1, "capabilities", Msg("Capabilities")),
                f(2, "privileged", OptBool),
                f(3, "seLinuxOptions", Msg("SELinuxOptions")),
                f(10, "windowsOptions", Msg("WindowsSecurityContextOptions")),
                f(4, "runAsUser", Int),
                f(8, "runAsGroup", Int),
                f(5, "runAsNonRoot", OptBool),
                f(6, "readOnlyRootFilesystem", OptBool),
                f(7, "allowPrivilegeEscalation", OptBool),
                f(9, "procMount", Str),
                f(11, "seccompProfile", Msg("SeccompProfile")),
                f(12, "appArmorProfile", Msg("AppArmorProfile")),
            ];
            S
        }
        "SELinuxOptions" => {
            const S: &[F] = &[
                f(1, "user", Str),
                f(2, "role", Str),
                f(3, "type", Str),
                f(4, "level", Str),
            ];
            S
        }
        "WindowsSecurityContextOptions" => {
            const S: &[F] = &[
                f(1, "gmsaCredentialSpecName", Str),
                f(2, "gmsaCredentialSpec", Str),
                f(3, "runAsUserName", Str),
                f(4, "hostProcess", OptBool),
            ];
            S
        }
        "SeccompProfile" => {
            const S: &[F] = &[f(1, "type", Str), f(2, "localhostProfile", Str)];
            S
        }
        "AppArmorProfile" => {
            const S: &[F] = &[f(1, "type", Str), f(2, "localhostProfile", Str)];
            S
        }
        "Capabilities" => {
            const S: &[F] = &[r(1, "add", Str), r(2, "drop", Str)];
            S
        }
        _ => &[],
    }
}
