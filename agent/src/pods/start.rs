//! Starting one container: image, argv/env/user, mounts, OCI spec, containerd — and the pod events
//! a user sees in `kubectl describe` (Pulling, Pulled, Created, Started, Failed).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod, Secret};
use kube::api::Api;

use super::Context;
use super::env::{self, Downward};
use super::files::EtcFiles;
use super::recorder::container_field;
use crate::images::{PullPolicy, PulledImage, RegistryAuth};
use crate::runtime::labels::{ContainerKind, ContainerMeta};
use crate::runtime::spec::{self, BindMount, Security, SpecInput};
use crate::runtime::stdio::StdioConfig;
use crate::runtime::{CreateRequest, Started, cgroups, logs};

pub struct StartPlan {
    pub pod: Arc<Pod>,
    pub container: Container,
    pub kind: ContainerKind,
    pub attempt: u32,
    pub previous_id: Option<String>,
    pub pod_ip: Option<IpAddr>,
    /// net, ipc, uts namespace paths of the pinned sandbox.
    pub sandbox: Option<(PathBuf, PathBuf, PathBuf)>,
    pub volumes: HashMap<String, PathBuf>,
    pub etc: EtcFiles,
    pub pod_dir: PathBuf,
    /// The pod's arrival number (startup gate order).
    pub arrival: u64,
    /// The PID namespace to join instead of a new one (an ephemeral container's `targetContainerName`).
    pub pid_ns: Option<PathBuf>,
}

/// An ephemeral container as the container it runs as (the same fields, less `targetContainerName`).
pub fn ephemeral_container(e: &EphemeralContainer) -> Option<Container> {
    serde_json::to_value(e)
        .and_then(serde_json::from_value)
        .ok()
}

#[derive(Debug)]
pub enum Outcome {
    Started {
        name: String,
        attempt: u32,
        started: Started,
        /// Normalized reference (`docker.io/library/nginx:latest`), what the kubelet reports as `image`.
        image: String,
        image_id: String,
        stop_signal: u32,
    },
    PullFailed {
        name: String,
        message: String,
    },
    ConfigError {
        name: String,
        message: String,
    },
    RunFailed {
        name: String,
        message: String,
    },
    /// The OCI runtime refused to start the process (command not found, bad user, …): the attempt
    /// counts as a container that ran and ended (containerd CRI's `StartError`, exit code 128).
    StartFailed {
        name: String,
        attempt: u32,
        id: String,
        message: String,
        image: String,
        image_id: String,
    },
}

impl Outcome {
    pub fn name(&self) -> &str {
        match self {
            Outcome::Started { name, .. }
            | Outcome::PullFailed { name, .. }
            | Outcome::ConfigError { name, .. }
            | Outcome::RunFailed { name, .. }
            | Outcome::StartFailed { name, .. } => name,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Always,
    IfNotPresent,
    Never,
}

/// `imagePullPolicy`, defaulted like the API server: `Always` for `:latest` or untagged images.
pub fn pull_policy(c: &Container) -> Policy {
    match c.image_pull_policy.as_deref() {
        Some("Always") => Policy::Always,
        Some("IfNotPresent") => Policy::IfNotPresent,
        Some("Never") => Policy::Never,
        _ => {
            let image = c.image.as_deref().unwrap_or_default();
            if image.contains('@') {
                return Policy::IfNotPresent;
            }
            let last = image.rsplit('/').next().unwrap_or(image);
            match last.split_once(':') {
                Some((_, "latest")) | None => Policy::Always,
                Some(_) => Policy::IfNotPresent,
            }
        }
    }
}

fn images_policy(p: Policy) -> PullPolicy {
    match p {
        Policy::Always => PullPolicy::Always,
        Policy::IfNotPresent => PullPolicy::IfNotPresent,
        Policy::Never => PullPolicy::Never,
    }
}

/// Parse an image STOPSIGNAL (`SIGQUIT`, `QUIT`, `3`).
pub fn parse_signal(s: &str) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return Some(n);
    }
    let upper = s.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name)
        .ok()
        .map(|s| s as i32 as u32)
}

/// Registry credentials from the pod's imagePullSecrets (`kubernetes.io/dockerconfigjson` or `dockercfg`);
/// a secret that cannot be read is skipped, as the kubelet does.
async fn pull_secrets(ctx: &Context, pod: &Pod) -> Vec<RegistryAuth> {
    let mut out = Vec::new();
    let refs = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.clone())
        .unwrap_or_default();
    if refs.is_empty() {
        return out;
    }
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    for r in refs {
        let name = r.name;
        let secret = match api.get(&name).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(secret = %name, error = %e, "unable to retrieve pull secret");
                continue;
            }
        };
        let data = secret.data.unwrap_or_default();
        let Some(json) = data
            .get(".dockerconfigjson")
            .or_else(|| data.get(".dockercfg"))
        else {
            continue;
        };
        match RegistryAuth::from_docker_config(&json.0) {
            Ok(auths) => out.extend(auths),
            Err(e) => tracing::warn!(secret = %name, error = %e, "invalid pull secret"),
        }
    }
    out
}

async fn ensure_image(ctx: &Context, plan: &StartPlan, image: &str) -> Result<PulledImage, String> {
    let pod = &plan.pod;
    let field = Some(container_field(plan.kind, &plan.container.name));
    let policy = pull_policy(&plan.container);
    if policy != Policy::Always {
        if let Ok(img) = ctx.images.ensure(image, PullPolicy::Never, &[]).await {
            ctx.recorder.normal(
                pod,
                field,
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            );
            return Ok(img);
        }
        if policy == Policy::Never {
            let msg =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            ctx.recorder
                .warning(pod, field, "ErrImageNeverPull", msg.clone());
            return Err(msg);
        }
    }
    ctx.recorder.normal(
        pod,
        field.clone(),
        "Pulling",
        format!("Pulling image \"{image}\""),
    );
    let t = Instant::now();
    let credentials = pull_secrets(ctx, pod).await;
    match ctx
        .images
        .ensure(image, images_policy(policy), &credentials)
        .await
    {
        Ok(img) => {
            let secs = t.elapsed().as_secs_f64();
            ctx.recorder.normal(
                pod,
                field,
                "Pulled",
                format!("Successfully pulled image \"{image}\" in {secs:.3}s ({secs:.3}s including waiting). Image size: {} bytes.", img.size),
            );
            Ok(img)
        }
        Err(e) => {
            let msg = format!("Failed to pull image \"{image}\": {e}");
            ctx.recorder.warning(pod, field, "Failed", msg.clone());
            Err(msg)
        }
    }
}

/// The image's `User` as `uid[:gid]`; names are looked up in the image's own passwd/group files.
async fn resolve_image_user(
    ctx: &Context,
    plan: &StartPlan,
    img: &PulledImage,
) -> Result<String, String> {
    let user = img
        .config
        .config()
        .as_ref()
        .and_then(|c| c.user().clone())
        .unwrap_or_default();
    env::verify_non_root_user(&plan.pod, &plan.container, &user)?;
    if env::parse_user(&user).is_ok() {
        return Ok(user);
    }
    let (passwd, group) = ctx.runtime.image_user_db(&img.chain_id).await?;
    crate::runtime::userdb::resolve(&user, &passwd, &group)
}

fn build_spec(
    ctx: &Context,
    plan: &StartPlan,
    img: &PulledImage,
    image_user: &str,
    meta: &ContainerMeta,
    term_log: &Path,
    d: &Downward<'_>,
) -> Result<SpecInput, String> {
    let c = &plan.container;
    let pod = &plan.pod;
    let pod_spec = pod.spec.as_ref();
    let image_cfg = img.config.config().as_ref();
    let env = env::environment(c, image_cfg, d)?;
    let args = env::argv(c, image_cfg, &env);
    let (uid, gid, groups) = env::user(pod, c, image_user)?;
    let resources = cgroups::container_resources(c)?;
    let Some((net, ipc, uts)) = plan.sandbox.clone() else {
        return Err("pod sandbox is not ready".into());
    };
    let mut mounts = vec![
        BindMount {
            source: plan.etc.hosts.clone(),
            destination: "/etc/hosts".into(),
            readonly: false,
        },
        BindMount {
            source: plan.etc.hostname.clone(),
            destination: "/etc/hostname".into(),
            readonly: false,
        },
        BindMount {
            source: plan.etc.resolv.clone(),
            destination: "/etc/resolv.conf".into(),
            readonly: false,
        },
    ];
    mounts.extend(crate::volumes::mounts(&plan.pod, c, &plan.volumes).map_err(|e| e.to_string())?);
    let term_path = c
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".into());
    mounts.push(BindMount {
        source: term_log.to_path_buf(),
        destination: term_path,
        readonly: false,
    });
    let sc = c.security_context.as_ref();
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let mut security = Security {
        privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
        add_caps: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        drop_caps: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
        no_new_privileges: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        readonly_rootfs: sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        seccomp: None,
    };
    let cap_set = spec::capabilities(&security)?;
    security.seccomp = crate::runtime::seccomp::for_container(
        pod_spec
            .and_then(|s| s.security_context.as_ref())
            .and_then(|s| s.seccomp_profile.as_ref()),
        sc.and_then(|s| s.seccomp_profile.as_ref()),
        security.privileged,
        &cap_set,
        &ctx.root_dir.join("seccomp"),
    )
    .map_err(|e| e.to_string())?;
    let cwd = c
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| image_cfg.and_then(|i| i.working_dir().clone()))
        .unwrap_or_else(|| "/".into());
    Ok(SpecInput {
        args,
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd,
        uid,
        gid,
        additional_gids: groups,
        hostname: super::worker::hostname(pod),
        net_ns: net,
        ipc_ns: ipc,
        uts_ns: uts,
        host_network: pod_spec.and_then(|s| s.host_network).unwrap_or(false),
        host_pid: pod_spec.and_then(|s| s.host_pid).unwrap_or(false),
        host_ipc: pod_spec.and_then(|s| s.host_ipc).unwrap_or(false),
        mounts,
        cgroups_path: cgroups::cgroups_path(&meta.pod_uid, &meta.container_id()),
        cgroup_v2: ctx.runtime.cgroup_v2,
        resources,
        security,
        terminal: c.tty.unwrap_or(false),
    })
}

/// Make the container join the PID namespace at `path` (unless it uses the host's).
fn join_pid_namespace(oci: &mut oci_spec::runtime::Spec, path: &Path) {
    use oci_spec::runtime::LinuxNamespaceType;
    if let Some(namespaces) = oci
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut())
    {
        for ns in namespaces
            .iter_mut()
            .filter(|ns| ns.typ() == LinuxNamespaceType::Pid)
        {
            ns.set_path(Some(path.to_path_buf()));
        }
    }
}

pub async fn run(ctx: Arc<Context>, plan: StartPlan) -> Outcome {
    let name = plan.container.name.clone();
    let image = plan.container.image.clone().unwrap_or_default();
    let pod = plan.pod.clone();
    let field = Some(container_field(plan.kind, &name));
    let t0 = Instant::now();
    let img = match ensure_image(&ctx, &plan, &image).await {
        Ok(i) => i,
        Err(message) => return Outcome::PullFailed { name, message },
    };
    let meta = ContainerMeta {
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        pod_namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        container_name: name.clone(),
        attempt: plan.attempt,
        kind: plan.kind,
    };
    let id = meta.container_id();
    let term_log = plan.pod_dir.join("containers").join(&name).join(&id);
    let config_error = |message: String| {
        ctx.recorder
            .warning(&pod, field.clone(), "Failed", format!("Error: {message}"));
        Outcome::ConfigError {
            name: name.clone(),
            message,
        }
    };
    let image_user = match resolve_image_user(&ctx, &plan, &img).await {
        Ok(u) => u,
        Err(m) => return config_error(m),
    };
    let refs = crate::volumes::objects::Refs::container(&plan.container);
    let objects = match crate::volumes::objects::Objects::fetch(
        &ctx.client,
        &meta.pod_namespace,
        &refs,
    )
    .await
    {
        Ok(o) => o,
        Err(m) => return config_error(m),
    };
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let services = match ctx.services.variables(&meta.pod_namespace, links).await {
        Ok(v) => v,
        Err(m) => return config_error(m),
    };
    let d = Downward {
        pod: &plan.pod,
        pod_ip: plan.pod_ip,
        host_ip: ctx.node_ip,
        objects: &objects,
        services: &services,
    };
    let input = match build_spec(&ctx, &plan, &img, &image_user, &meta, &term_log, &d) {
        Ok(i) => i,
        Err(m) => return config_error(m),
    };
    let mut oci = match spec::build(&input) {
        Ok(s) => s,
        Err(m) => return config_error(m),
    };
    if let Some(path) = &plan.pid_ns {
        join_pid_namespace(&mut oci, path);
    }
    let prep = async {
        if let Some(dir) = term_log.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::File::create(&term_log).await?;
        crate::volumes::ensure_sources(&input.mounts).await
    };
    if let Err(e) = prep.await {
        return config_error(format!("prepare container files: {e}"));
    }
    if let Some(prev) = &plan.previous_id {
        ctx.runtime.remove(prev).await;
    }
    let log_path = logs::log_path(
        &ctx.pod_log_dir,
        &meta.pod_namespace,
        &meta.pod_name,
        &meta.pod_uid,
        &name,
        plan.attempt,
    );
    let stop_signal = img
        .config
        .config()
        .as_ref()
        .and_then(|c| c.stop_signal().clone())
        .and_then(|s| parse_signal(&s))
        .unwrap_or(15);
    let req = CreateRequest {
        meta,
        image_ref: img.reference.clone(),
        chain_id: img.chain_id.clone(),
        spec: oci,
        log_path,
        stdio: StdioConfig::of(&plan.container),
    };
    let t1 = Instant::now();
    let permit = ctx.startup_gate.acquire(plan.arrival).await;
    let res = ctx.runtime.create_and_start(req).await;
    drop(permit);
    tracing::debug!(container = %name, image_ms = (t1 - t0).as_millis() as u64, start_ms = t1.elapsed().as_millis() as u64, "start timings");
    match res {
        Ok(started) => {
            ctx.recorder.normal(
                &pod,
                field.clone(),
                "Created",
                format!("Created container: {name}"),
            );
            ctx.recorder.normal(
                &pod,
                field.clone(),
                "Started",
                format!("Started container {name}"),
            );
            super::hooks::post_start(&ctx, &plan, &started.id, field).await;
            tracing::info!(container = %started.id, pid = started.pid, "container started");
            Outcome::Started {
                name,
                attempt: plan.attempt,
                started,
                image: img.reference.clone(),
                image_id: img.image_id.clone(),
                stop_signal,
            }
        }
        Err(e) => {
            let message = e.to_string();
            tracing::warn!(container = %id, error = %message, "container start failed");
            ctx.recorder
                .warning(&pod, field, "Failed", format!("Error: {message}"));
            if is_start_error(&e) {
                Outcome::StartFailed {
                    name,
                    attempt: plan.attempt,
                    id,
                    message,
                    image: img.reference.clone(),
                    image_id: img.image_id.clone(),
                }
            } else {
                Outcome::RunFailed { name, message }
            }
        }
    }
}

/// A task create/start that containerd answered with a runtime error (not an unreachable containerd):
/// the process itself could not be started.
fn is_start_error(e: &crate::runtime::RuntimeError) -> bool {
    match e {
        crate::runtime::RuntimeError::Grpc { op, source, .. } => {
            matches!(*op, "task create" | "task start")
                && !matches!(
                    source.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::Cancelled
                        | tonic::Code::DeadlineExceeded
                )
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors() {
        let grpc = |op, code| crate::runtime::RuntimeError::Grpc {
            op,
            id: "c".into(),
            source: tonic::Status::new(code, "x"),
        };
        assert!(is_start_error(&grpc("task create", tonic::Code::Unknown)));
        assert!(is_start_error(&grpc("task start", tonic::Code::Unknown)));
        assert!(!is_start_error(&grpc(
            "task create",
            tonic::Code::Unavailable
        )));
        assert!(!is_start_error(&grpc(
            "container create",
            tonic::Code::Unknown
        )));
    }

    fn c(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(pull_policy(&c("nginx", None)), Policy::Always);
        assert_eq!(pull_policy(&c("nginx:latest", None)), Policy::Always);
        assert_eq!(pull_policy(&c("busybox:1.35", None)), Policy::IfNotPresent);
        assert_eq!(
            pull_policy(&c("127.0.0.1:5000/library/busybox", None)),
            Policy::Always
        );
        assert_eq!(
            pull_policy(&c("127.0.0.1:5000/library/busybox:1.35", None)),
            Policy::IfNotPresent
        );
        assert_eq!(
            pull_policy(&c("busybox@sha256:abcd", None)),
            Policy::IfNotPresent
        );
        assert_eq!(pull_policy(&c("nginx", Some("Never"))), Policy::Never);
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGQUIT"), Some(3));
        assert_eq!(parse_signal("QUIT"), Some(3));
        assert_eq!(parse_signal("15"), Some(15));
        assert_eq!(parse_signal("SIGBOGUS"), None);
    }
}
