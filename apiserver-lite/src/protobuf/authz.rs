//! Schema entries of the authorization.k8s.io/v1 and authentication.k8s.io/v1 review statuses and selector
//! attributes (kubectl auth can-i and whoami), and the rbac.authorization.k8s.io/v1 aggregation rule of a
//! ClusterRole. Field numbers are those of each group's `generated.proto` at kube 1.32.

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "AggregationRule" => {
            const S: &[F] = &[r(1, "clusterRoleSelectors", Msg("LabelSelector"))];
            S
        }
        "FieldSelectorAttributes" => {
            const S: &[F] = &[
                f(1, "rawSelector", Str),
                r(2, "requirements", Msg("FieldSelectorRequirement")),
            ];
            S
        }
        "LabelSelectorAttributes" => {
            const S: &[F] = &[
                f(1, "rawSelector", Str),
                r(2, "requirements", Msg("LabelSelectorRequirement")),
            ];
            S
        }
        "FieldSelectorRequirement" => {
            const S: &[F] = &[f(1, "key", Str), f(2, "operator", Str), r(3, "values", Str)];
            S
        }
        "SubjectAccessReviewStatus" => {
            const S: &[F] = &[
                f(1, "allowed", Bool),
                f(4, "denied", Bool),
                f(2, "reason", Str),
                f(3, "evaluationError", Str),
            ];
            S
        }
        "SubjectRulesReviewStatus" => {
            const S: &[F] = &[
                r(1, "resourceRules", Msg("ResourceRule")),
                r(2, "nonResourceRules", Msg("NonResourceRule")),
                f(3, "incomplete", Bool),
                f(4, "evaluationError", Str),
            ];
            S
        }
        "ResourceRule" => {
            const S: &[F] = &[
                r(1, "verbs", Str),
                r(2, "apiGroups", Str),
                r(3, "resources", Str),
                r(4, "resourceNames", Str),
            ];
            S
        }
        "NonResourceRule" => {
            const S: &[F] = &[r(1, "verbs", Str), r(2, "nonResourceURLs", Str)];
            S
        }
        "SelfSubjectReviewStatus" => {
            const S: &[F] = &[f(1, "userInfo", Msg("UserInfo"))];
            S
        }
        "UserInfo" => {
            const S: &[F] = &[
                f(1, "username", Str),
                f(2, "uid", Str),
                r(3, "groups", Str),
                f(4, "extra", MapStrList),
            ];
            S
        }
        _ => &[],
    }
}
