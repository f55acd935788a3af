//! Schema entries of the core/v1 Node messages beyond those a node agent writes (dynamic config source
//! and status, attached volumes, runtime handlers, features), so that the Node table is complete. Field
//! numbers are those of `k8s.io/api/core/v1/generated.proto` at kube 1.32.

use super::Ty::*;
use super::{F, f};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "NodeConfigSource" => {
            const S: &[F] = &[f(2, "configMap", Msg("ConfigMapNodeConfigSource"))];
            S
        }
        "AttachedVolume" => {
            const S: &[F] = &[f(1, "name", Str), f(2, "devicePath", Str)];
            S
        }
        "NodeConfigStatus" => {
            const S: &[F] = &[
                f(1, "assigned", Msg("NodeConfigSource")),
                f(2, "active", Msg("NodeConfigSource")),
                f(3, "lastKnownGood", Msg("NodeConfigSource")),
                f(4, "error", Str),
            ];
            S
        }
        "NodeRuntimeHandler" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "features", Msg("NodeRuntimeHandlerFeatures")),
            ];
            S
        }
        "NodeFeatures" => {
            const S: &[F] = &[f(1, "supplementalGroupsPolicy", OptBool)];
            S
        }
        "ConfigMapNodeConfigSource" => {
            const S: &[F] = &[
                f(1, "namespace", Str),
                f(2, "name", Str),
                f(3, "uid", Str),
                f(4, "resourceVersion", Str),
                f(5, "kubeletConfigKey", Str),
            ];
            S
        }
        "NodeRuntimeHandlerFeatures" => {
            const S: &[F] = &[
                f(1, "recursiveReadOnlyMounts", OptBool),
                f(2, "userNamespaces", OptBool),
            ];
            S
        }
        _ => &[],
    }
}
