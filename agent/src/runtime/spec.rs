//! The OCI runtime spec of one container, built from oci-spec's runc-style default.

use std::path::PathBuf;
use std::str::FromStr;

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder, RootBuilder, Spec, UserBuilder,
};

use super::cgroups::Resources;

/// containerd's (and Docker's) default capability set.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability the kernel knows (privileged containers).
pub const ALL_CAPABILITIES: [Capability; 41] = [
    Capability::AuditControl,
    Capability::AuditRead,
    Capability::AuditWrite,
    Capability::BlockSuspend,
    Capability::Bpf,
    Capability::CheckpointRestore,
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::Kill,
    Capability::Lease,
    Capability::LinuxImmutable,
    Capability::MacAdmin,
    Capability::MacOverride,
    Capability::Mknod,
    Capability::NetAdmin,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetRaw,
    Capability::Perfmon,
    Capability::Setgid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysChroot,
    Capability::SysModule,
    Capability::SysNice,
    Capability::SysPacct,
    Capability::SysPtrace,
    Capability::SysRawio,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Syslog,
    Capability::WakeAlarm,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: String,
    pub readonly: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub privileged: bool,
    pub add_caps: Vec<String>,
    pub drop_caps: Vec<String>,
    pub no_new_privileges: bool,
    pub readonly_rootfs: bool,
    /// The seccomp filter (`None`: unconfined).
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
}

#[derive(Debug, Clone)]
pub struct SpecInput {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub net_ns: PathBuf,
    pub ipc_ns: PathBuf,
    pub uts_ns: PathBuf,
    /// hostNetwork (also the host's UTS namespace, so no hostname is set), hostPID, hostIPC.
    pub host_network: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
    pub mounts: Vec<BindMount>,
    pub cgroups_path: String,
    pub cgroup_v2: bool,
    pub resources: Resources,
    pub security: Security,
    /// `tty: true`: the process gets a terminal (and `TERM=xterm` unless its env sets TERM).
    pub terminal: bool,
}

fn cap_from_k8s(name: &str) -> Result<Capability, String> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare).map_err(|_| format!("unknown capability {name:?}"))
}

/// The capability set after securityContext `add`/`drop` (`ALL` allowed in both) and `privileged`.
pub fn capabilities(sec: &Security) -> Result<Capabilities, String> {
    let all = || -> Capabilities { ALL_CAPABILITIES.into_iter().collect() };
    if sec.privileged {
        return Ok(all());
    }
    let mut caps: Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
    if sec.drop_caps.iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
        caps.clear();
    } else {
        for c in &sec.drop_caps {
            caps.remove(&cap_from_k8s(c)?);
        }
    }
    for c in &sec.add_caps {
        if c.eq_ignore_ascii_case("ALL") {
            caps = all();
        } else {
            caps.insert(cap_from_k8s(c)?);
        }
    }
    Ok(caps)
}

fn ns(typ: LinuxNamespaceType, path: Option<&PathBuf>) -> Result<LinuxNamespace, String> {
    let mut b = LinuxNamespaceBuilder::default().typ(typ);
    if let Some(p) = path {
        b = b.path(p.clone());
    }
    b.build().map_err(|e| e.to_string())
}

fn bind(m: &BindMount) -> Result<Mount, String> {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    options.push(if m.readonly { "ro" } else { "rw" }.to_string());
    MountBuilder::default()
        .destination(PathBuf::from(&m.destination))
        .typ("bind")
        .source(m.source.clone())
        .options(options)
        .build()
        .map_err(|e| e.to_string())
}

pub fn build(input: &SpecInput) -> Result<Spec, String> {
    let err = |e: oci_spec::OciSpecError| e.to_string();
    let mut spec = Spec::default();
    spec.set_hostname(if input.host_network {
        None
    } else {
        Some(input.hostname.clone())
    });
    spec.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(input.security.readonly_rootfs)
            .build()
            .map_err(err)?,
    ));

    let caps = capabilities(&input.security)?;
    let mut process = spec.process().clone().unwrap_or_default();
    if input.args.is_empty() {
        return Err("no command: neither the container nor the image specifies one".to_string());
    }
    process.set_args(Some(input.args.clone()));
    let mut env = input.env.clone();
    if input.terminal && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    process.set_env(Some(env));
    process.set_terminal(Some(input.terminal));
    process.set_cwd(PathBuf::from(if input.cwd.is_empty() {
        "/"
    } else {
        &input.cwd
    }));
    process.set_user(
        UserBuilder::default()
            .uid(input.uid)
            .gid(input.gid)
            .additional_gids(input.additional_gids.clone())
            .build()
            .map_err(err)?,
    );
    process.set_capabilities(Some(
        LinuxCapabilitiesBuilder::default()
            .bounding(caps.clone())
            .effective(caps.clone())
            .permitted(caps)
            .build()
            .map_err(err)?,
    ));
    process.set_no_new_privileges(Some(input.security.no_new_privileges));
    spec.set_process(Some(process));

    // Default mounts first, then ours; one of ours replaces a default at the same destination.
    let mut mounts: Vec<Mount> = spec
        .mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            !input
                .mounts
                .iter()
                .any(|b| m.destination() == &PathBuf::from(&b.destination))
        })
        .map(|mut m| {
            if input.security.privileged
                && (m.destination() == &PathBuf::from("/sys")
                    || m.destination() == &PathBuf::from("/sys/fs/cgroup"))
                && let Some(opts) = m.options().clone()
            {
                m.set_options(Some(opts.into_iter().filter(|o| o != "ro").collect()));
            }
            m
        })
        .collect();
    for b in &input.mounts {
        mounts.push(bind(b)?);
    }
    spec.set_mounts(Some(mounts));

    let mut namespaces = vec![ns(LinuxNamespaceType::Mount, None)?];
    if !input.host_pid {
        namespaces.push(ns(LinuxNamespaceType::Pid, None)?);
    }
    if !input.host_network {
        namespaces.push(ns(LinuxNamespaceType::Network, Some(&input.net_ns))?);
        namespaces.push(ns(LinuxNamespaceType::Uts, Some(&input.uts_ns))?);
    }
    if !input.host_ipc {
        namespaces.push(ns(LinuxNamespaceType::Ipc, Some(&input.ipc_ns))?);
    }
    if input.cgroup_v2 {
        namespaces.push(ns(LinuxNamespaceType::Cgroup, None)?);
    }

    let r = &input.resources;
    let mut cpu = LinuxCpuBuilder::default().shares(r.cpu_shares);
    if let Some(q) = r.cpu_quota {
        cpu = cpu.quota(q).period(r.cpu_period);
    }
    let mut resources = LinuxResourcesBuilder::default()
        .devices(vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(input.security.privileged)
                .access("rwm")
                .build()
                .map_err(err)?,
        ])
        .cpu(cpu.build().map_err(err)?);
    if let Some(limit) = r.memory_limit {
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .build()
                .map_err(err)?,
        );
    }

    let default_linux = spec.linux().clone().unwrap_or_default();
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build().map_err(err)?)
        .cgroups_path(PathBuf::from(&input.cgroups_path));
    if let Some(seccomp) = &input.security.seccomp {
        linux = linux.seccomp(seccomp.clone());
    }
    if input.security.privileged {
        linux = linux
            .masked_paths(Vec::<String>::new())
            .readonly_paths(Vec::<String>::new());
    } else {
        if let Some(masked) = default_linux.masked_paths() {
            linux = linux.masked_paths(masked.clone());
        }
        if let Some(ro) = default_linux.readonly_paths() {
            linux = linux.readonly_paths(ro.clone());
        }
    }
    spec.set_linux(Some(linux.build().map_err(err)?));
    Ok(spec)
}

/// The spec as containerd wants it in `Container.spec`.
pub fn to_any(spec: &Spec) -> Result<prost_types::Any, String> {
    Ok(prost_types::Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".to_string(),
        value: serde_json::to_vec(spec).map_err(|e| e.to_string())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> SpecInput {
        SpecInput {
            args: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/srv".into(),
            uid: 101,
            gid: 102,
            additional_gids: vec![],
            hostname: "web".into(),
            net_ns: "/run/skiff/pods/u/ns/net".into(),
            ipc_ns: "/run/skiff/pods/u/ns/ipc".into(),
            uts_ns: "/run/skiff/pods/u/ns/uts".into(),
            host_network: false,
            host_pid: false,
            host_ipc: false,
            mounts: vec![
                BindMount {
                    source: "/var/lib/p/etc-hosts".into(),
                    destination: "/etc/hosts".into(),
                    readonly: false,
                },
                BindMount {
                    source: "/data".into(),
                    destination: "/dev/shm".into(),
                    readonly: true,
                },
            ],
            cgroups_path: "/skiff/podu/u-web-0".into(),
            cgroup_v2: false,
            resources: Resources {
                cpu_shares: 512,
                cpu_quota: Some(50_000),
                cpu_period: 100_000,
                memory_limit: Some(1 << 26),
            },
            security: Security::default(),
            terminal: false,
        }
    }

    #[test]
    fn builds_runc_spec() {
        let spec = build(&input()).expect("spec");
        let v = serde_json::to_value(&spec).expect("json");
        assert_eq!(v["root"]["path"], "rootfs");
        assert_eq!(v["root"]["readonly"], false);
        assert_eq!(v["hostname"], "web");
        assert_eq!(v["process"]["args"][2], "daemon off;");
        assert_eq!(v["process"]["cwd"], "/srv");
        assert_eq!(v["process"]["user"]["uid"], 101);
        assert_eq!(v["process"]["noNewPrivileges"], false);
        let caps = v["process"]["capabilities"]["bounding"]
            .as_array()
            .map(Vec::len);
        assert_eq!(caps, Some(14));
        let nss = v["linux"]["namespaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(nss.len(), 5);
        assert!(
            nss.iter()
                .any(|n| n["type"] == "network" && n["path"] == "/run/skiff/pods/u/ns/net")
        );
        assert!(
            nss.iter()
                .any(|n| n["type"] == "pid" && n.get("path").is_none())
        );
        assert_eq!(v["linux"]["cgroupsPath"], "/skiff/podu/u-web-0");
        assert_eq!(v["linux"]["resources"]["cpu"]["shares"], 512);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 1 << 26);
        let mounts = v["mounts"].as_array().cloned().unwrap_or_default();
        let shm: Vec<_> = mounts
            .iter()
            .filter(|m| m["destination"] == "/dev/shm")
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0]["type"], "bind");
        assert!(mounts.iter().any(|m| m["destination"] == "/etc/hosts"));
        assert!(
            v["linux"]["maskedPaths"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
        );
    }

    #[test]
    fn security_context() {
        let mut sec = Security {
            add_caps: vec!["NET_ADMIN".into()],
            drop_caps: vec!["CAP_KILL".into()],
            ..Default::default()
        };
        let caps = capabilities(&sec).expect("caps");
        assert!(caps.contains(&Capability::NetAdmin));
        assert!(!caps.contains(&Capability::Kill));
        sec.drop_caps = vec!["ALL".into()];
        assert_eq!(capabilities(&sec).expect("caps").len(), 1);
        sec.add_caps = vec!["BOGUS".into()];
        assert!(capabilities(&sec).is_err());
        let mut i = input();
        i.security.privileged = true;
        let v = serde_json::to_value(build(&i).expect("spec")).expect("json");
        assert!(
            v["linux"]["maskedPaths"]
                .as_array()
                .is_none_or(|m| m.is_empty())
        );
        assert_eq!(v["linux"]["resources"]["devices"][0]["allow"], true);
    }

    #[test]
    fn terminal_and_term() {
        let v =
            |i: &SpecInput| serde_json::to_value(build(i).unwrap_or_default()).unwrap_or_default();
        let plain = v(&input());
        assert_eq!(plain["process"]["terminal"], false);
        let mut i = input();
        i.terminal = true;
        let t = v(&i);
        assert_eq!(t["process"]["terminal"], true);
        assert_eq!(
            t["process"]["env"],
            serde_json::json!(["PATH=/bin", "TERM=xterm"])
        );
        i.env.push("TERM=vt100".into());
        assert_eq!(
            v(&i)["process"]["env"],
            serde_json::json!(["PATH=/bin", "TERM=vt100"])
        );
    }

    #[test]
    fn seccomp_in_spec() {
        let mut i = input();
        let v = serde_json::to_value(build(&i).expect("spec")).expect("json");
        assert!(v["linux"].get("seccomp").is_none(), "unconfined by default");
        let caps = capabilities(&i.security).expect("caps");
        i.security.seccomp = Some(super::super::seccomp::runtime_default(&caps).expect("profile"));
        let v = serde_json::to_value(build(&i).expect("spec")).expect("json");
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    }

    #[test]
    fn cgroup_namespace_on_v2_only() {
        let mut i = input();
        i.cgroup_v2 = true;
        let v = serde_json::to_value(build(&i).expect("spec")).expect("json");
        assert!(
            v["linux"]["namespaces"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n["type"] == "cgroup"))
        );
    }

    #[test]
    fn host_namespaces() {
        let mut i = input();
        i.host_network = true;
        i.host_pid = true;
        let v = serde_json::to_value(build(&i).expect("spec")).expect("json");
        let types: Vec<String> = v["linux"]["namespaces"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|n| n["type"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(types, ["mount", "ipc"]);
        assert!(v.get("hostname").is_none(), "never set the host's hostname");
    }

    #[test]
    fn no_command_is_an_error() {
        let mut i = input();
        i.args.clear();
        assert!(build(&i).is_err());
    }
}
