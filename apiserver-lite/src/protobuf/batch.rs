//! Schema entries of batch/v1 Jobs (kubectl's `create job` sends a Job in protobuf). Field numbers are
//! those of `k8s.io/api/batch/v1/generated.proto`; `podFailurePolicy` and `successPolicy` are not
//! decoded from protobuf (kubectl's generators never set them).

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
                f(5, "manualSelector", Bool),
                f(6, "template", Msg("PodTemplateSpec")),
                f(8, "ttlSecondsAfterFinished", Int),
                f(9, "completionMode", Str),
                f(10, "suspend", Bool),
                f(14, "podReplacementPolicy", Str),
                f(15, "managedBy", Str),
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
        "UncountedTerminatedPods" => {
            const S: &[F] = &[r(1, "succeeded", Str), r(2, "failed", Str)];
            S
        }
        _ => &[],
    }
}
