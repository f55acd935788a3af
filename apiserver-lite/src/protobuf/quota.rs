//! Schema entries of core/v1 ResourceQuotas (kubectl's `create quota` sends one in protobuf). Field
//! numbers are those of `k8s.io/api/core/v1/generated.proto`.

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "ResourceQuota" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("ResourceQuotaSpec")),
                f(3, "status", Msg("ResourceQuotaStatus")),
            ];
            S
        }
        "ResourceQuotaSpec" => {
            const S: &[F] = &[
                f(1, "hard", MapQty),
                r(2, "scopes", Str),
                f(3, "scopeSelector", Msg("ScopeSelector")),
            ];
            S
        }
        "ScopeSelector" => {
            const S: &[F] = &[r(
                1,
                "matchExpressions",
                Msg("ScopedResourceSelectorRequirement"),
            )];
            S
        }
        "ScopedResourceSelectorRequirement" => {
            const S: &[F] = &[
                f(1, "scopeName", Str),
                f(2, "operator", Str),
                r(3, "values", Str),
            ];
            S
        }
        "ResourceQuotaStatus" => {
            const S: &[F] = &[f(1, "hard", MapQty), f(2, "used", MapQty)];
            S
        }
        _ => &[],
    }
}
