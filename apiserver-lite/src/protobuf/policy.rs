//! Schema entries of policy/v1 PodDisruptionBudgets (kubectl's `create poddisruptionbudget` sends one in
//! protobuf). Field numbers are those of `k8s.io/api/policy/v1/generated.proto` at kube 1.32.

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "PodDisruptionBudget" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("PodDisruptionBudgetSpec")),
                f(3, "status", Msg("PodDisruptionBudgetStatus")),
            ];
            S
        }
        "PodDisruptionBudgetSpec" => {
            const S: &[F] = &[
                f(1, "minAvailable", IntOrStr),
                f(2, "selector", Msg("LabelSelector")),
                f(3, "maxUnavailable", IntOrStr),
                f(4, "unhealthyPodEvictionPolicy", Str),
            ];
            S
        }
        "PodDisruptionBudgetStatus" => {
            const S: &[F] = &[
                f(1, "observedGeneration", Int),
                f(2, "disruptedPods", MapTime),
                f(3, "disruptionsAllowed", Int),
                f(4, "currentHealthy", Int),
                f(5, "desiredHealthy", Int),
                f(6, "expectedPods", Int),
                r(7, "conditions", Msg("Condition")),
            ];
            S
        }
        _ => &[],
    }
}
