//! Schema entries of core/v1 container statuses (PodStatus.containerStatuses, initContainerStatuses,
//! ephemeralContainerStatuses) and the messages they hold.
//! Field numbers, names and repeated-ness are those of `k8s.io/api/core/v1/generated.proto` at kube 1.32
//! (checked by a script against upstream); JSON names are the Go types' json tags.

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "ContainerStatus" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "state", Msg("ContainerState")),
                f(3, "lastState", Msg("ContainerState")),
                f(4, "ready", Bool),
                f(5, "restartCount", Int),
                f(6, "image", Str),
                f(7, "imageID", Str),
                f(8, "containerID", Str),
                f(9, "started", OptBool),
                f(10, "allocatedResources", MapQty),
                f(11, "resources", Msg("ResourceRequirements")),
                r(12, "volumeMounts", Msg("VolumeMountStatus")),
                f(13, "user", Msg("ContainerUser")),
                r(14, "allocatedResourcesStatus", Msg("ResourceStatus")),
            ];
            S
        }
        "ContainerState" => {
            const S: &[F] = &[
                f(1, "waiting", Msg("ContainerStateWaiting")),
                f(2, "running", Msg("ContainerStateRunning")),
                f(3, "terminated", Msg("ContainerStateTerminated")),
            ];
            S
        }
        "ContainerStateWaiting" => {
            const S: &[F] = &[f(1, "reason", Str), f(2, "message", Str)];
            S
        }
        "ContainerStateRunning" => {
            const S: &[F] = &[f(1, "startedAt", Time)];
            S
        }
        "ContainerStateTerminated" => {
            const S: &[F] = &[
                f(1, "exitCode", Int),
                f(2, "signal", Int),
                f(3, "reason", Str),
                f(4, "message", Str),
                f(5, "startedAt", Time),
                f(6, "finishedAt", Time),
                f(7, "containerID", Str),
            ];
            S
        }
        "VolumeMountStatus" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "mountPath", Str),
                f(3, "readOnly", Bool),
                f(4, "recursiveReadOnly", Str),
            ];
            S
        }
        "ContainerUser" => {
            const S: &[F] = &[f(1, "linux", Msg("LinuxContainerUser"))];
            S
        }
        "LinuxContainerUser" => {
            const S: &[F] = &[
                f(1, "uid", Int),
                f(2, "gid", Int),
                r(3, "supplementalGroups", Int),
            ];
            S
        }
        "ResourceStatus" => {
            const S: &[F] = &[f(1, "name", Str), r(2, "resources", Msg("ResourceHealth"))];
            S
        }
        "ResourceHealth" => {
            const S: &[F] = &[f(1, "resourceID", Str), f(2, "health", Str)];
            S
        }
        _ => &[],
    }
}
