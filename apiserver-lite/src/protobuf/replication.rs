//! Schema entries of core/v1 ReplicationControllers (a typed client may send one in protobuf). Field
//! numbers are those of `k8s.io/api/core/v1/generated.proto` at kube 1.32; the pod template and the
//! metadata are the main table's.

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "ReplicationController" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("ReplicationControllerSpec")),
                f(3, "status", Msg("ReplicationControllerStatus")),
            ];
            S
        }
        "ReplicationControllerSpec" => {
            const S: &[F] = &[
                f(1, "replicas", Int),
                f(4, "minReadySeconds", Int),
                f(2, "selector", MapStr),
                f(3, "template", Msg("PodTemplateSpec")),
            ];
            S
        }
        "ReplicationControllerStatus" => {
            const S: &[F] = &[
                f(1, "replicas", Int),
                f(2, "fullyLabeledReplicas", Int),
                f(4, "readyReplicas", Int),
                f(5, "availableReplicas", Int),
                f(3, "observedGeneration", Int),
                r(6, "conditions", Msg("ReplicationControllerCondition")),
            ];
            S
        }
        "ReplicationControllerCondition" => {
            const S: &[F] = &[
                f(1, "type", Str),
                f(2, "status", Str),
                f(3, "lastTransitionTime", Time),
                f(4, "reason", Str),
                f(5, "message", Str),
            ];
            S
        }
        _ => &[],
    }
}
