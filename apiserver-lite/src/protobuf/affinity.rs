//! Schema entries of core/v1 scheduling constraints of a PodSpec: node and pod (anti-)affinity and topology spread.
//! Field numbers, names and repeated-ness are those of `k8s.io/api/core/v1/generated.proto` at kube 1.32
//! (checked by a script against upstream); JSON names are the Go types' json tags.

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "Affinity" => {
            const S: &[F] = &[
                f(1, "nodeAffinity", Msg("NodeAffinity")),
                f(2, "podAffinity", Msg("PodAffinity")),
                f(3, "podAntiAffinity", Msg("PodAntiAffinity")),
            ];
            S
        }
        "NodeAffinity" => {
            const S: &[F] = &[
                f(
                    1,
                    "requiredDuringSchedulingIgnoredDuringExecution",
                    Msg("NodeSelector"),
                ),
                r(
                    2,
                    "preferredDuringSchedulingIgnoredDuringExecution",
                    Msg("PreferredSchedulingTerm"),
                ),
            ];
            S
        }
        "PodAffinity" => {
            const S: &[F] = &[
                r(
                    1,
                    "requiredDuringSchedulingIgnoredDuringExecution",
                    Msg("PodAffinityTerm"),
                ),
                r(
                    2,
                    "preferredDuringSchedulingIgnoredDuringExecution",
                    Msg("WeightedPodAffinityTerm"),
                ),
            ];
            S
        }
        "PodAntiAffinity" => {
            const S: &[F] = &[
                r(
                    1,
                    "requiredDuringSchedulingIgnoredDuringExecution",
                    Msg("PodAffinityTerm"),
                ),
                r(
                    2,
                    "preferredDuringSchedulingIgnoredDuringExecution",
                    Msg("WeightedPodAffinityTerm"),
                ),
            ];
            S
        }
        "NodeSelector" => {
            const S: &[F] = &[r(1, "nodeSelectorTerms", Msg("NodeSelectorTerm"))];
            S
        }
        "NodeSelectorTerm" => {
            const S: &[F] = &[
                r(1, "matchExpressions", Msg("NodeSelectorRequirement")),
                r(2, "matchFields", Msg("NodeSelectorRequirement")),
            ];
            S
        }
        "NodeSelectorRequirement" => {
            const S: &[F] = &[f(1, "key", Str), f(2, "operator", Str), r(3, "values", Str)];
            S
        }
        "PreferredSchedulingTerm" => {
            const S: &[F] = &[
                f(1, "weight", Int),
                f(2, "preference", Msg("NodeSelectorTerm")),
            ];
            S
        }
        "PodAffinityTerm" => {
            const S: &[F] = &[
                f(1, "labelSelector", Msg("LabelSelector")),
                r(2, "namespaces", Str),
                f(3, "topologyKey", Str),
                f(4, "namespaceSelector", Msg("LabelSelector")),
                r(5, "matchLabelKeys", Str),
                r(6, "mismatchLabelKeys", Str),
            ];
            S
        }
        "WeightedPodAffinityTerm" => {
            const S: &[F] = &[
                f(1, "weight", Int),
                f(2, "podAffinityTerm", Msg("PodAffinityTerm")),
            ];
            S
        }
        "TopologySpreadConstraint" => {
            const S: &[F] = &[
                f(1, "maxSkew", Int),
                f(2, "topologyKey", Str),
                f(3, "whenUnsatisfiable", Str),
                f(4, "labelSelector", Msg("LabelSelector")),
                f(5, "minDomains", Int),
                f(6, "nodeAffinityPolicy", Str),
                f(7, "nodeTaintsPolicy", Str),
                r(8, "matchLabelKeys", Str),
            ];
            S
        }
        _ => &[],
    }
}
