//! Schema entries of core/v1 Volume, its inlined VolumeSource (every source of kube 1.32) and the first half of the
//! source messages.
//! Field numbers, names and repeated-ness are those of `k8s.io/api/core/v1/generated.proto` at kube 1.32
//! (checked by a script against upstream); JSON names are the Go types' json tags.

use super::Ty::*;
use super::{F, f, r};

pub(super) fn schema(msg: &str) -> &'static [F] {
    match msg {
        "Volume" => {
            const S: &[F] = &[
                f(1, "name", Str),
                f(2, "volumeSource", Inline("VolumeSource")),
            ];
            S
        }
        "VolumeSource" => {
            const S: &[F] = &[
                f(1, "hostPath", Msg("HostPathVolumeSource")),
                f(2, "emptyDir", Msg("EmptyDirVolumeSource")),
                f(3, "gcePersistentDisk", Msg("GCEPersistentDiskVolumeSource")),
                f(
                    4,
                    "awsElasticBlockStore",
                    Msg("AWSElasticBlockStoreVolumeSource"),
                ),
                f(5, "gitRepo", Msg("GitRepoVolumeSource")),
                f(6, "secret", Msg("SecretVolumeSource")),
                f(7, "nfs", Msg("NFSVolumeSource")),
                f(8, "iscsi", Msg("ISCSIVolumeSource")),
                f(9, "glusterfs", Msg("GlusterfsVolumeSource")),
                f(
                    10,
                    "persistentVolumeClaim",
                    Msg("PersistentVolumeClaimVolumeSource"),
                ),
                f(11, "rbd", Msg("RBDVolumeSource")),
                f(12, "flexVolume", Msg("FlexVolumeSource")),
                f(13, "cinder", Msg("CinderVolumeSource")),
                f(14, "cephfs", Msg("CephFSVolumeSource")),
                f(15, "flocker", Msg("FlockerVolumeSource")),
                f(16, "downwardAPI", Msg("DownwardAPIVolumeSource")),
                f(17, "fc", Msg("FCVolumeSource")),
                f(18, "azureFile", Msg("AzureFileVolumeSource")),
                f(19, "configMap", Msg("ConfigMapVolumeSource")),
                f(20, "vsphereVolume", Msg("VsphereVirtualDiskVolumeSource")),
                f(21, "quobyte", Msg("QuobyteVolumeSource")),
                f(22, "azureDisk", Msg("AzureDiskVolumeSource")),
                f(
                    23,
                    "photonPersistentDisk",
                    Msg("PhotonPersistentDiskVolumeSource"),
                ),
                f(26, "projected", Msg("ProjectedVolumeSource")),
                f(24, "portworxVolume", Msg("PortworxVolumeSource")),
                f(25, "scaleIO", Msg("ScaleIOVolumeSource")),
                f(27, "storageos", Msg("StorageOSVolumeSource")),
                f(28, "csi", Msg("CSIVolumeSource")),
                f(29, "ephemeral", Msg("EphemeralVolumeSource")),
                f(30, "image", Msg("ImageVolumeSource")),
            ];
            S
        }
        "HostPathVolumeSource" => {
            const S: &[F] = &[f(1, "path", Str), f(2, "type", Str)];
            S
        }
        "EmptyDirVolumeSource" => {
            const S: &[F] = &[f(1, "medium", Str), f(2, "sizeLimit", Quantity)];
            S
        }
        "GCEPersistentDiskVolumeSource" => {
            const S: &[F] = &[
                f(1, "pdName", Str),
                f(2, "fsType", Str),
                f(3, "partition", Int),
                f(4, "readOnly", Bool),
            ];
            S
        }
        "AWSElasticBlockStoreVolumeSource" => {
            const S: &[F] = &[
                f(1, "volumeID", Str),
                f(2, "fsType", Str),
                f(3, "partition", Int),
                f(4, "readOnly", Bool),
            ];
            S
        }
        "GitRepoVolumeSource" => {
            const S: &[F] = &[
                f(1, "repository", Str),
                f(2, "revision", Str),
                f(3, "directory", Str),
            ];
            S
        }
        "SecretVolumeSource" => {
            const S: &[F] = &[
                f(1, "secretName", Str),
                r(2, "items", Msg("KeyToPath")),
                f(3, "defaultMode", Int),
                f(4, "optional", OptBool),
            ];
            S
        }
        "NFSVolumeSource" => {
            const S: &[F] = &[
                f(1, "server", Str),
                f(2, "path", Str),
                f(3, "readOnly", Bool),
            ];
            S
        }
        "ISCSIVolumeSource" => {
            const S: &[F] = &[
                f(1, "targetPortal", Str),
                f(2, "iqn", Str),
                f(3, "lun", Int),
                f(4, "iscsiInterface", Str),
                f(5, "fsType", Str),
                f(6, "readOnly", Bool),
                r(7, "portals", Str),
                f(8, "chapAuthDiscovery", Bool),
                f(11, "chapAuthSession", Bool),
                f(10, "secretRef", Msg("LocalObjectReference")),
                f(12, "initiatorName", Str),
            ];
            S
        }
        "GlusterfsVolumeSource" => {
            const S: &[F] = &[
                f(1, "endpoints", Str),
                f(2, "path", Str),
                f(3, "readOnly", Bool),
            ];
            S
        }
        "PersistentVolumeClaimVolumeSource" => {
            const S: &[F] = &[f(1, "claimName", Str), f(2, "readOnly", Bool)];
            S
        }
        "RBDVolumeSource" => {
            const S: &[F] = &[
                r(1, "monitors", Str),
                f(2, "image", Str),
                f(3, "fsType", Str),
                f(4, "pool", Str),
                f(5, "user", Str),
                f(6, "keyring", Str),
                f(7, "secretRef", Msg("LocalObjectReference")),
                f(8, "readOnly", Bool),
            ];
            S
        }
        "FlexVolumeSource" => {
            const S: &[F] = &[
                f(1, "driver", Str),
                f(2, "fsType", Str),
                f(3, "secretRef", Msg("LocalObjectReference")),
                f(4, "readOnly", Bool),
                f(5, "options", MapStr),
            ];
            S
        }
        "CinderVolumeSource" => {
            const S: &[F] = &[
                f(1, "volumeID", Str),
                f(2, "fsType", Str),
                f(3, "readOnly", Bool),
                f(4, "secretRef", Msg("LocalObjectReference")),
            ];
            S
        }
        "CephFSVolumeSource" => {
            const S: &[F] = &[
                r(1, "monitors", Str),
                f(2, "path", Str),
                f(3, "user", Str),
                f(4, "secretFile", Str),
                f(5, "secretRef", Msg("LocalObjectReference")),
                f(6, "readOnly", Bool),
            ];
            S
        }
        "FlockerVolumeSource" => {
            const S: &[F] = &[f(1, "datasetName", Str), f(2, "datasetUUID", Str)];
            S
        }
        "DownwardAPIVolumeSource" => {
            const S: &[F] = &[
                r(1, "items", Msg("DownwardAPIVolumeFile")),
                f(2, "defaultMode", Int),
            ];
            S
        }
        "FCVolumeSource" => {
            const S: &[F] = &[
                r(1, "targetWWNs", Str),
                f(2, "lun", Int),
                f(3, "fsType", Str),
                f(4, "readOnly", Bool),
                r(5, "wwids", Str),
            ];
            S
        }
        "AzureFileVolumeSource" => {
            const S: &[F] = &[
                f(1, "secretName", Str),
                f(2, "shareName", Str),
                f(3, "readOnly", Bool),
            ];
            S
        }
        _ => &[],
    }
}
