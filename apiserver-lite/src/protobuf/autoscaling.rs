//! Schema entries of autoscaling/v1 HorizontalPodAutoscalers: kubectl 1.32's `autoscale` creates one through
//! the typed client, in protobuf. Field numbers are those of `k8s.io/api/autoscaling/v1/generated.proto`.
//! Only v1 is decoded (the v2 message shares the name but not the fields): see [`super::decode`].

use super::Ty::*;
use super::{F, f};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "HorizontalPodAutoscaler" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("HorizontalPodAutoscalerSpec")),
                f(3, "status", Msg("HorizontalPodAutoscalerStatus")),
            ];
            S
        }
        "HorizontalPodAutoscalerSpec" => {
            const S: &[F] = &[
                f(1, "scaleTargetRef", Msg("CrossVersionObjectReference")),
                f(2, "minReplicas", Int),
                f(3, "maxReplicas", Int),
                f(4, "targetCPUUtilizationPercentage", Int),
            ];
            S
        }
        "CrossVersionObjectReference" => {
            const S: &[F] = &[
                f(1, "kind", Str),
                f(2, "name", Str),
                f(3, "apiVersion", Str),
            ];
            S
        }
        "HorizontalPodAutoscalerStatus" => {
            const S: &[F] = &[
                f(1, "observedGeneration", Int),
                f(2, "lastScaleTime", Time),
                f(3, "currentReplicas", Int),
                f(4, "desiredReplicas", Int),
                f(5, "currentCPUUtilizationPercentage", Int),
            ];
            S
        }
        _ => &[],
    }
}
