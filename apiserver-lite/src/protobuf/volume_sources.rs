//! Schema entries of core/v1 volume source messages, second half: configMap, projected (with service account
//! tokens, cluster trust bundles, downward API), csi, ephemeral with its PersistentVolumeClaimTemplate, image, ….
//! Field numbers, names and repeated-ness are those of `k8s.io/api/core/v1/generated.proto` at kube 1.32
//! (checked by a script against upstream); JSON names are the Go types' json tags.

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "ConfigMapVolumeSource" => {
            const S: &[F] = &[
                f(1, "localObjectReference", Inline("LocalObjectReference")),
                r(2, "items", Msg("KeyToPath")),
                f(3, "defaultMode", Int),
                f(4, "optional", OptBool),
            ];
            S
        }
        "VsphereVirtualDiskVolumeSource" => {
            const S: &[F] = &[
                f(1, "volumePath", Str),
                f(2, "fsType", Str),
                f(3, "storagePolicyName", Str),
                f(4, "storagePolicyID", Str),
            ];
            S
        }
        "QuobyteVolumeSource" => {
            const S: &[F] = &[
                f(1, "registry", Str),
                f(2, "volume", Str),
                f(3, "readOnly", Bool),
                f(4, "user", Str),
                f(5, "group", Str),
                f(6, "tenant", Str),
            ];
            S
        }
        "AzureDiskVolumeSource" => {
            const S: &[F] = &[
                f(1, "diskName", Str),
                f(2, "diskURI", Str),
                f(3, "cachingMode", Str),
                f(4, "fsType", Str),
                f(5, "readOnly", OptBool),
                f(6, "kind", Str),
            ];
            S
        }
        "PhotonPersistentDiskVolumeSource" => {
            const S: &[F] = &[f(1, "pdID", Str), f(2, "fsType", Str)];
            S
        }
        "ProjectedVolumeSource" => {
            const S: &[F] = &[
                r(1, "sources", Msg("VolumeProjection")),
                f(2, "defaultMode", Int),
            ];
            S
        }
        "PortworxVolumeSource" => {
            const S: &[F] = &[
                f(1, "volumeID", Str),
                f(2, "fsType", Str),
                f(3, "readOnly", Bool),
            ];
            S
        }
        "ScaleIOVolumeSource" => {
            const S: &[F] = &[
                f(1, "gateway", Str),
                f(2, "system", Str),
                f(3, "secretRef", Msg("LocalObjectReference")),
                f(4, "sslEnabled", Bool),
                f(5, "protectionDomain", Str),
                f(6, "storagePool", Str),
                f(7, "storageMode", Str),
                f(8, "volumeName", Str),
                f(9, "fsType", Str),
                f(10, "readOnly", Bool),
            ];
            S
        }
        "StorageOSVolumeSource" => {
            const S: &[F] = &[
                f(1, "volumeName", Str),
                f(2, "volumeNamespace", Str),
                f(3, "fsType", Str),
                f(4, "readOnly", Bool),
                f(5, "secretRef", Msg("LocalObjectReference")),
            ];
            S
        }
        "CSIVolumeSource" => {
            const S: &[F] = &[
                f(1, "driver", Str),
                f(2, "readOnly", OptBool),
                f(3, "fsType", Str),
                f(4, "volumeAttributes", MapStr),
                f(5, "nodePublishSecretRef", Msg("LocalObjectReference")),
            ];
            S
        }
        "EphemeralVolumeSource" => {
            const S: &[F] = &[f(
                1,
                "volumeClaimTemplate",
                Msg("PersistentVolumeClaimTemplate"),
            )];
            S
        }
        "ImageVolumeSource" => {
            const S: &[F] = &[f(1, "reference", Str), f(2, "pullPolicy", Str)];
            S
        }
        "KeyToPath" => {
            const S: &[F] = &[f(1, "key", Str), f(2, "path", Str), f(3, "mode", Int)];
            S
        }
        "DownwardAPIVolumeFile" => {
            const S: &[F] = &[
                f(1, "path", Str),
                f(2, "fieldRef", Msg("ObjectFieldSelector")),
                f(3, "resourceFieldRef", Msg("ResourceFieldSelector")),
                f(4, "mode", Int),
            ];
            S
        }
        "VolumeProjection" => {
            const S: &[F] = &[
                f(1, "secret", Msg("SecretProjection")),
                f(2, "downwardAPI", Msg("DownwardAPIProjection")),
                f(3, "configMap", Msg("ConfigMapProjection")),
                f(
                    4,
                    "serviceAccountToken",
                    Msg("ServiceAccountTokenProjection"),
                ),
                f(5, "clusterTrustBundle", Msg("ClusterTrustBundleProjection")),
            ];
            S
        }
        "PersistentVolumeClaimTemplate" => {
            const S: &[F] = &[
                f(1, "metadata", Msg("ObjectMeta")),
                f(2, "spec", Msg("PersistentVolumeClaimSpec")),
            ];
            S
        }
        "SecretProjection" => {
            const S: &[F] = &[
                f(1, "localObjectReference", Inline("LocalObjectReference")),
                r(2, "items", Msg("KeyToPath")),
                f(4, "optional", OptBool),
            ];
            S
        }
        "DownwardAPIProjection" => {
            const S: &[F] = &[r(1, "items", Msg("DownwardAPIVolumeFile"))];
            S
        }
        "ConfigMapProjection" => {
            const S: &[F] = &[
                f(1, "localObjectReference", Inline("LocalObjectReference")),
                r(2, "items", Msg("KeyToPath")),
                f(4, "optional", OptBool),
            ];
            S
        }
        "ServiceAccountTokenProjection" => {
            const S: &[F] = &[
                f(1, "audience", Str),
                f(2, "expirationSeconds", Int),
                f(3, "path", Str),
            ];
            S
        }
        "ClusterTrustBundleProjection" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "signerName", Str),
                f(3, "labelSelector", Msg("LabelSelector")),
                f(5, "optional", OptBool),
                f(4, "path", Str),
            ];
            S
        }
        "PersistentVolumeClaimSpec" => {
            const S: &[F] = &[
                r(1, "accessModes", Str),
                f(4, "selector", Msg("LabelSelector")),
                f(2, "resources", Msg("VolumeResourceRequirements")),
                f(3, "volumeName", Str),
                f(5, "storageClassName", Str),
                f(6, "volumeMode", Str),
                f(7, "dataSource", Msg("TypedLocalObjectReference")),
                f(8, "dataSourceRef", Msg("TypedObjectReference")),
                f(9, "volumeAttributesClassName", Str),
            ];
            S
        }
        "VolumeResourceRequirements" => {
            const S: &[F] = &[f(1, "limits", MapQty), f(2, "requests", MapQty)];
            S
        }
        "TypedLocalObjectReference" => {
            const S: &[F] = &[f(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)];
            S
        }
        "TypedObjectReference" => {
            const S: &[F] = &[
                f(1, "apiGroup", Str),
                f(2, "kind", Str),
                f(3, "name", Str),
                f(4, "namespace", Str),
            ];
            S
        }
        _ => &[],
    }
}
