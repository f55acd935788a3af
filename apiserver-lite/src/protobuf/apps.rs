//! Schema entries of apps/v1 Deployments and ReplicaSets (kubectl's `create deployment` sends a Deployment
//! in protobuf) and the meta/v1 and core/v1 messages they embed. Field numbers are those of
//! `k8s.io/api/apps/v1/generated.proto`.

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "Deployment" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("DeploymentSpec")),
                f(3, "status", Msg("DeploymentStatus")),
            ];
            S
        }
        "ReplicaSet" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("ReplicaSetSpec")),
                f(3, "status", Msg("ReplicaSetStatus")),
            ];
            S
        }
        "DeploymentSpec" => {
            const S: &[F] = &[
                f(1, "replicas", Int),
                f(2, "selector", Msg("LabelSelector")),
                f(3, "template", Msg("PodTemplateSpec")),
                f(4, "strategy", Msg("DeploymentStrategy")),
                f(5, "minReadySeconds", Int),
                f(6, "revisionHistoryLimit", Int),
                f(7, "paused", Bool),
                f(9, "progressDeadlineSeconds", Int),
            ];
            S
        }
        "DeploymentStrategy" => {
            const S: &[F] = &[
                f(1, "type", Str),
                f(2, "rollingUpdate", Msg("RollingUpdateDeployment")),
            ];
            S
        }
        "RollingUpdateDeployment" => {
            const S: &[F] = &[f(1, "maxUnavailable", IntOrStr), f(2, "maxSurge", IntOrStr)];
            S
        }
        "DeploymentStatus" => {
            const S: &[F] = &[
                f(1, "observedGeneration", Int),
                f(2, "replicas", Int),
                f(3, "updatedReplicas", Int),
                f(7, "readyReplicas", Int),
                f(4, "availableReplicas", Int),
                f(5, "unavailableReplicas", Int),
                r(6, "conditions", Msg("DeploymentCondition")),
                f(8, "collisionCount", Int),
            ];
            S
        }
        "DeploymentCondition" => {
            const S: &[F] = &[
                f(1, "type", Str),
                f(2, "status", Str),
                f(6, "lastUpdateTime", Time),
                f(7, "lastTransitionTime", Time),
                f(4, "reason", Str),
                f(5, "message", Str),
            ];
            S
        }
        "ReplicaSetSpec" => {
            const S: &[F] = &[
                f(1, "replicas", Int),
                f(4, "minReadySeconds", Int),
                f(2, "selector", Msg("LabelSelector")),
                f(3, "template", Msg("PodTemplateSpec")),
            ];
            S
        }
        "ReplicaSetStatus" => {
            const S: &[F] = &[
                f(1, "replicas", Int),
                f(2, "fullyLabeledReplicas", Int),
                f(4, "readyReplicas", Int),
                f(5, "availableReplicas", Int),
                f(3, "observedGeneration", Int),
                r(6, "conditions", Msg("ReplicaSetCondition")),
            ];
            S
        }
        "ReplicaSetCondition" => {
            const S: &[F] = &[
                f(1, "type", Str),
                f(2, "status", Str),
                f(3, "lastTransitionTime", Time),
                f(4, "reason", Str),
                f(5, "message", Str),
            ];
            S
        }
        "PodTemplateSpec" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("PodSpec")),
            ];
            S
        }
        "LabelSelector" => {
            const S: &[F] = &[
                f(1, "matchLabels", MapStr),
                r(2, "matchExpressions", Msg("LabelSelectorRequirement")),
            ];
            S
        }
        "LabelSelectorRequirement" => {
            const S: &[F] = &[f(1, "key", Str), f(2, "operator", Str), r(3, "values", Str)];
            S
        }
        _ => &[],
    }
}
