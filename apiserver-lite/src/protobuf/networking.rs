//! Schema entries of networking.k8s.io/v1 Ingresses and IngressClasses (kubectl's `create ingress` sends
//! one in protobuf). Field numbers are those of `k8s.io/api/networking/v1/generated.proto` at kube 1.32;
//! `IngressRule.ingressRuleValue` is a Go embedded struct, inlined in JSON.

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "Ingress" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("IngressSpec")),
                f(3, "status", Msg("IngressStatus")),
            ];
            S
        }
        "IngressSpec" => {
            const S: &[F] = &[
                f(4, "ingressClassName", Str),
                f(1, "defaultBackend", Msg("IngressBackend")),
                r(2, "tls", Msg("IngressTLS")),
                r(3, "rules", Msg("IngressRule")),
            ];
            S
        }
        "IngressBackend" => {
            const S: &[F] = &[
                f(4, "service", Msg("IngressServiceBackend")),
                f(3, "resource", Msg("TypedLocalObjectReference")),
            ];
            S
        }
        "IngressServiceBackend" => {
            const S: &[F] = &[f(1, "name", Str), f(2, "port", Msg("ServiceBackendPort"))];
            S
        }
        "ServiceBackendPort" => {
            const S: &[F] = &[f(1, "name", Str), f(2, "number", Int)];
            S
        }
        "IngressTLS" => {
            const S: &[F] = &[r(1, "hosts", Str), f(2, "secretName", Str)];
            S
        }
        "IngressRule" => {
            const S: &[F] = &[
                f(1, "host", Str),
                f(2, "ingressRuleValue", Inline("IngressRuleValue")),
            ];
            S
        }
        "IngressRuleValue" => {
            const S: &[F] = &[f(1, "http", Msg("HTTPIngressRuleValue"))];
            S
        }
        "HTTPIngressRuleValue" => {
            const S: &[F] = &[r(1, "paths", Msg("HTTPIngressPath"))];
            S
        }
        "HTTPIngressPath" => {
            const S: &[F] = &[
                f(1, "path", Str),
                f(3, "pathType", Str),
                f(2, "backend", Msg("IngressBackend")),
            ];
            S
        }
        "IngressStatus" => {
            const S: &[F] = &[f(1, "loadBalancer", Msg("IngressLoadBalancerStatus"))];
            S
        }
        "IngressLoadBalancerStatus" => {
            const S: &[F] = &[r(1, "ingress", Msg("IngressLoadBalancerIngress"))];
            S
        }
        "IngressLoadBalancerIngress" => {
            const S: &[F] = &[
                f(1, "ip", Str),
                f(2, "hostname", Str),
                r(4, "ports", Msg("IngressPortStatus")),
            ];
            S
        }
        "IngressPortStatus" => {
            const S: &[F] = &[f(1, "port", Int), f(2, "protocol", Str), f(3, "error", Str)];
            S
        }
        "IngressClass" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("IngressClassSpec")),
            ];
            S
        }
        "IngressClassSpec" => {
            const S: &[F] = &[
                f(1, "controller", Str),
                f(2, "parameters", Msg("IngressClassParametersReference")),
            ];
            S
        }
        "IngressClassParametersReference" => {
            const S: &[F] = &[
                f(1, "apiGroup", Str),
                f(2, "kind", Str),
                f(3, "name", Str),
                f(4, "scope", Str),
                f(5, "namespace", Str),
            ];
            S
        }
        _ => &[],
    }
}
