//! Schema entries of batch/v1 Jobs and CronJobs (kubectl's `create job` and `create cronjob` send
//! protobuf). Field numbers are
//! those of `k8s.io/api/batch/v1/generated.proto` at kube 1.32.

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "Job" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("JobSpec")),
                f(3, "status", Msg("JobStatus")),
            ];
            S
        }
        "JobSpec" => {
            const S: &[F] = &[
                f(1, "parallelism", Int),
                f(2, "completions", Int),
                f(3, "activeDeadlineSeconds", Int),
                f(7, "backoffLimit", Int),
                f(12, "backoffLimitPerIndex", Int),
                f(13, "maxFailedIndexes", Int),
                f(4, "selector", Msg("LabelSelector")),
                f(5, "manualSelector", OptBool),
                f(6, "template", Msg("PodTemplateSpec")),
                f(8, "ttlSecondsAfterFinished", Int),
                f(9, "completionMode", Str),
                f(10, "suspend", OptBool),
                f(14, "podReplacementPolicy", Str),
                f(15, "managedBy", Str),
                f(11, "podFailurePolicy", Msg("PodFailurePolicy")),
                f(16, "successPolicy", Msg("SuccessPolicy")),
            ];
            S
        }
        "JobStatus" => {
            const S: &[F] = &[
                r(1, "conditions", Msg("JobCondition")),
                f(2, "startTime", Time),
                f(3, "completionTime", Time),
                f(4, "active", Int),
                f(5, "succeeded", Int),
                f(6, "failed", Int),
                f(11, "terminating", Int),
                f(7, "completedIndexes", Str),
                f(10, "failedIndexes", Str),
                f(8, "uncountedTerminatedPods", Msg("UncountedTerminatedPods")),
                f(9, "ready", Int),
            ];
            S
        }
        "JobCondition" => {
            const S: &[F] = &[
                f(1, "type", Str),
                f(2, "status", Str),
                f(3, "lastProbeTime", Time),
                f(4, "lastTransitionTime", Time),
                f(5, "reason", Str),
                f(6, "message", Str),
            ];
            S
        }
        "CronJob" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("CronJobSpec")),
                f(3, "status", Msg("CronJobStatus")),
            ];
            S
        }
        "CronJobSpec" => {
            const S: &[F] = &[
                f(1, "schedule", Str),
                f(8, "timeZone", Str),
                f(2, "startingDeadlineSeconds", Int),
                f(3, "concurrencyPolicy", Str),
                f(4, "suspend", OptBool),
                f(5, "jobTemplate", Msg("JobTemplateSpec")),
                f(6, "successfulJobsHistoryLimit", Int),
                f(7, "failedJobsHistoryLimit", Int),
            ];
            S
        }
        "JobTemplateSpec" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("JobSpec")),
            ];
            S
        }
        "CronJobStatus" => {
            const S: &[F] = &[
                r(1, "active", Msg("ObjectReference")),
                f(4, "lastScheduleTime", Time),
                f(5, "lastSuccessfulTime", Time),
            ];
            S
        }
        "UncountedTerminatedPods" => {
            const S: &[F] = &[r(1, "succeeded", Str), r(2, "failed", Str)];
            S
        }
        "PodFailurePolicy" => {
            const S: &[F] = &[r(1, "rules", Msg("PodFailurePolicyRule"))];
            S
        }
        "PodFailurePolicyRule" => {
            const S: &[F] = &[
                f(1, "action", Str),
                f(
                    2,
                    "onExitCodes",
                    Msg("PodFailurePolicyOnExitCodesRequirement"),
                ),
                r(
                    3,
                    "onPodConditions",
                    Msg("PodFailurePolicyOnPodConditionsPattern"),
                ),
            ];
            S
        }
        "PodFailurePolicyOnExitCodesRequirement" => {
            const S: &[F] = &[
                f(1, "containerName", Str),
                f(2, "operator", Str),
                r(3, "values", Int),
            ];
            S
        }
        "PodFailurePolicyOnPodConditionsPattern" => {
            const S: &[F] = &[f(1, "type", Str), f(2, "status", Str)];
            S
        }
        "SuccessPolicy" => {
            const S: &[F] = &[r(1, "rules", Msg("SuccessPolicyRule"))];
            S
        }
        "SuccessPolicyRule" => {
            const S: &[F] = &[f(1, "succeededIndexes", Str), f(2, "succeededCount", Int)];
            S
        }
        _ => &[],
    }
}
