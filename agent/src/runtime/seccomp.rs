//! seccomp profiles: `RuntimeDefault` (the behaviour of containerd's CRI default profile: every system call
//! is refused with EPERM unless it is on an allow-list; calls that break the container boundary are only
//! allowed when the container holds the capability that guards them), `Unconfined`, and `Localhost`
//! profiles read from `<root-dir>/seccomp/`.
//!
//! The allow-list is data written for skiff: the x86_64 system call table (linux `asm/unistd_64.h`) minus
//! the calls Docker's and containerd's documentation list as blocked by their default profiles (kernel
//! modules, kexec, mount/namespace changes, keyrings, clock setting, bpf, perf, userfaultfd, io_uring, …).

use std::path::Path;

use super::syscalls::{ALLOWED, BY_CAPABILITY};
use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

/// Namespace flags `clone` may not carry without CAP_SYS_ADMIN: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
/// NEWPID, NEWNET.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// `personality` values a container may set (PER_LINUX, PER_LINUX32, UNAME26 variants, query).
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
const ENOSYS: u32 = 38;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeccompError {
    #[error("unknown seccompProfile type {0:?}")]
    UnknownType(String),
    #[error("seccompProfile type Localhost needs localhostProfile")]
    NoLocalhostProfile,
    #[error("localhostProfile {0:?} must be a relative path inside the seccomp profile directory")]
    BadPath(String),
    #[error("could not load seccomp profile {path}: {message}")]
    Load { path: String, message: String },
    #[error("building the seccomp profile: {0}")]
    Build(String),
}

fn allow(names: Vec<String>) -> Result<LinuxSyscall, SeccompError> {
    LinuxSyscallBuilder::default()
        .names(names)
        .action(LinuxSeccompAction::ScmpActAllow)
        .build()
        .map_err(|e| SeccompError::Build(e.to_string()))
}

/// The RuntimeDefault profile for a container holding `caps` (its bounding set).
pub fn runtime_default(caps: &Capabilities) -> Result<LinuxSeccomp, SeccompError> {
    let build = |e: oci_spec::OciSpecError| SeccompError::Build(e.to_string());
    let mut names: Vec<String> = ALLOWED.iter().map(|s| s.to_string()).collect();
    for (cap, calls) in BY_CAPABILITY {
        if caps.contains(cap) {
            names.extend(calls.iter().map(|s| s.to_string()));
        }
    }
    names.sort();
    names.dedup();
    let sys_admin = caps.contains(&Capability::SysAdmin);
    let mut syscalls = vec![allow(names)?];
    if sys_admin {
        syscalls.push(allow(vec!["clone".into(), "clone3".into()])?);
    } else {
        // clone without namespace flags; clone3 hides its flags in memory, so make libc fall back to clone.
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone".to_string()])
                .action(LinuxSeccompAction::ScmpActAllow)
                .args(vec![
                    LinuxSeccompArgBuilder::default()
                        .index(0usize)
                        .value(CLONE_NAMESPACE_FLAGS)
                        .value_two(0u64)
                        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                        .build()
                        .map_err(build)?,
                ])
                .build()
                .map_err(build)?,
        );
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone3".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(ENOSYS)
                .build()
                .map_err(build)?,
        );
    }
    for p in PERSONALITIES {
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["personality".to_string()])
                .action(LinuxSeccompAction::ScmpActAllow)
                .args(vec![
                    LinuxSeccompArgBuilder::default()
                        .index(0usize)
                        .value(p)
                        .op(LinuxSeccompOperator::ScmpCmpEq)
                        .build()
                        .map_err(build)?,
                ])
                .build()
                .map_err(build)?,
        );
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .architectures(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
        ])
        .syscalls(syscalls)
        .build()
        .map_err(build)
}

/// A `Localhost` profile: `<dir>/<relative>`, in the OCI / Docker seccomp JSON format.
pub fn localhost(dir: &Path, relative: &str) -> Result<LinuxSeccomp, SeccompError> {
    let rel = Path::new(relative);
    if relative.is_empty()
        || rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(SeccompError::BadPath(relative.to_string()));
    }
    let path = dir.join(rel);
    let load = |message: String| SeccompError::Load {
        path: path.display().to_string(),
        message,
    };
    let data = std::fs::read(&path).map_err(|e| load(e.to_string()))?;
    serde_json::from_slice(&data).map_err(|e| load(e.to_string()))
}

/// The profile for a container: the container's `seccompProfile`, else the pod's; none means Unconfined
/// (the kubelet's `seccompDefault: false`). Privileged containers run unconfined, as with the kubelet.
pub fn for_container(
    pod_profile: Option<&k8s_openapi::api::core::v1::SeccompProfile>,
    container_profile: Option<&k8s_openapi::api::core::v1::SeccompProfile>,
    privileged: bool,
    caps: &Capabilities,
    localhost_dir: &Path,
) -> Result<Option<LinuxSeccomp>, SeccompError> {
    let Some(profile) = container_profile.or(pod_profile) else {
        return Ok(None);
    };
    if privileged {
        return Ok(None);
    }
    match profile.type_.as_str() {
        "Unconfined" => Ok(None),
        "RuntimeDefault" => runtime_default(caps).map(Some),
        "Localhost" => {
            let rel = profile
                .localhost_profile
                .as_deref()
                .ok_or(SeccompError::NoLocalhostProfile)?;
            localhost(localhost_dir, rel).map(Some)
        }
        other => Err(SeccompError::UnknownType(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::SeccompProfile;

    fn default_caps() -> Capabilities {
        super::super::spec::DEFAULT_CAPABILITIES
            .into_iter()
            .collect()
    }

    fn allowed(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .iter()
            .flatten()
            .filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow && s.args().is_none())
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn runtime_default_is_an_allow_list() {
        let p = runtime_default(&default_caps()).expect("profile");
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        let names = allowed(&p);
        for ok in ["read", "execve", "openat", "chroot", "socket", "epoll_wait"] {
            assert!(names.iter().any(|n| n == ok), "{ok} allowed");
        }
        for blocked in [
            "mount",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "bpf",
            "kexec_load",
            "ptrace",
            "init_module",
            "userfaultfd",
            "reboot",
            "io_uring_setup",
            "pivot_root",
        ] {
            assert!(!names.iter().any(|n| n == blocked), "{blocked} blocked");
        }
        let v = serde_json::to_value(&p).expect("json");
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        let clone = v["syscalls"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["names"][0] == "clone"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    }

    #[test]
    fn capabilities_widen_the_list() {
        let mut caps = default_caps();
        caps.insert(Capability::SysAdmin);
        caps.insert(Capability::SysPtrace);
        caps.remove(&Capability::SysChroot);
        let names = allowed(&runtime_default(&caps).expect("profile"));
        for ok in ["mount", "unshare", "setns", "ptrace", "clone", "clone3"] {
            assert!(names.iter().any(|n| n == ok), "{ok} allowed with caps");
        }
        assert!(
            !names.iter().any(|n| n == "chroot"),
            "chroot needs SYS_CHROOT"
        );
    }

    #[test]
    fn profile_selection() {
        let dir = std::env::temp_dir().join(format!("skiff-seccomp-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let caps = default_caps();
        let rd = SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        };
        let un = SeccompProfile {
            type_: "Unconfined".into(),
            localhost_profile: None,
        };
        assert!(
            for_container(None, None, false, &caps, &dir)
                .expect("ok")
                .is_none()
        );
        assert!(
            for_container(Some(&rd), None, false, &caps, &dir)
                .expect("ok")
                .is_some()
        );
        assert!(
            for_container(Some(&rd), Some(&un), false, &caps, &dir)
                .expect("ok")
                .is_none()
        );
        assert!(
            for_container(Some(&rd), None, true, &caps, &dir)
                .expect("ok")
                .is_none()
        );
        let local = |p: &str| SeccompProfile {
            type_: "Localhost".into(),
            localhost_profile: Some(p.into()),
        };
        match for_container(None, Some(&local("missing.json")), false, &caps, &dir) {
            Err(SeccompError::Load { path, .. }) => assert!(path.ends_with("missing.json")),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            for_container(None, Some(&local("../etc/x")), false, &caps, &dir),
            Err(SeccompError::BadPath("../etc/x".into()))
        );
        std::fs::write(dir.join("bad.json"), "{not json").expect("write");
        assert!(matches!(
            for_container(None, Some(&local("bad.json")), false, &caps, &dir),
            Err(SeccompError::Load { .. })
        ));
        std::fs::write(
            dir.join("deny-mkdir.json"),
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .expect("write");
        let p = for_container(None, Some(&local("deny-mkdir.json")), false, &caps, &dir)
            .expect("ok")
            .expect("profile");
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);
        let bogus = SeccompProfile {
            type_: "Bogus".into(),
            localhost_profile: None,
        };
        assert!(for_container(None, Some(&bogus), false, &caps, &dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
