//! Schema entries of scheduling.k8s.io/v1 PriorityClasses (kubectl's `create priorityclass` sends one in
//! protobuf). Field numbers are those of `k8s.io/api/scheduling/v1/generated.proto` at kube 1.32.

use super::Ty::*;
use super::{F, f};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "PriorityClass" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "value", Int),
                f(3, "globalDefault", Bool),
                f(4, "description", Str),
                f(5, "preemptionPolicy", Str),
            ];
            S
        }
        _ => &[],
    }
}
