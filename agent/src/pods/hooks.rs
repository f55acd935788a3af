//! Container lifecycle hooks (postStart, preStop) with the exec, httpGet and sleep handlers. exec and
//! httpGet reuse the probe handlers; a hook fails when its handler does (non-zero exit, HTTP status ≥ 400).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod, Probe};

use crate::probes::handlers::{self, Env};
use crate::runtime::Runtime;

/// Which hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    PostStart,
    PreStop,
}

impl Hook {
    pub fn handler(self, c: &Container) -> Option<&LifecycleHandler> {
        let l = c.lifecycle.as_ref()?;
        match self {
            Hook::PostStart => l.post_start.as_ref(),
            Hook::PreStop => l.pre_stop.as_ref(),
        }
    }

    /// The event reason of a failure: `FailedPostStartHook` / `FailedPreStopHook`.
    pub fn failed_reason(self) -> &'static str {
        match self {
            Hook::PostStart => "FailedPostStartHook",
            Hook::PreStop => "FailedPreStopHook",
        }
    }
}

/// Where a hook runs.
pub struct HookEnv<'a> {
    pub runtime: &'a Runtime,
    pub run_dir: &'a std::path::Path,
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub container_id: &'a str,
    pub pod_ip: Option<IpAddr>,
}

/// Run `h` with at most `limit`; the error is the handler's output, suitable for the event message.
pub async fn run(h: &LifecycleHandler, env: &HookEnv<'_>, limit: Duration) -> Result<(), String> {
    if let Some(s) = &h.sleep {
        let secs =
            u64::try_from(s.seconds).map_err(|_| format!("invalid sleep seconds {}", s.seconds))?;
        tokio::time::sleep(Duration::from_secs(secs).min(limit)).await;
        return Ok(());
    }
    if h.exec.is_none() && h.http_get.is_none() {
        return Err("the hook has no supported handler (exec, httpGet or sleep)".into());
    }
    let probe = Probe {
        exec: h.exec.clone(),
        http_get: h.http_get.clone(),
        ..Default::default()
    };
    let uid = env.pod.metadata.uid.clone().unwrap_or_default();
    let penv = Env {
        runtime: env.runtime,
        run_dir: env.run_dir,
        pod_uid: &uid,
        container: env.container,
        container_id: env.container_id,
        pod_ip: env.pod_ip.or_else(|| {
            env.pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok())
        }),
    };
    let out = handlers::probe(&probe, &penv, limit).await;
    if out.ok { Ok(()) } else { Err(out.output) }
}

/// The grace left for the stop signal after a preStop hook took `elapsed` (the kubelet's rule:
/// never less than two seconds).
pub fn remaining_grace(grace: Duration, elapsed: Duration) -> Duration {
    grace
        .saturating_sub(elapsed)
        .max(super::teardown::MIN_GRACE)
}

/// Run the preStop hook of `c` (if any) within `grace`; returns how long it took and the failure message.
pub async fn pre_stop(env: &HookEnv<'_>, grace: Duration) -> (Duration, Option<String>) {
    let Some(h) = Hook::PreStop.handler(env.container) else {
        return (Duration::ZERO, None);
    };
    let t0 = Instant::now();
    let res = tokio::time::timeout(grace, run(h, env, grace)).await;
    let err = match res {
        Ok(Ok(())) => None,
        Ok(Err(m)) => Some(m),
        Err(_) => Some(format!(
            "PreStopHook did not finish within the grace period of {}s",
            grace.as_secs()
        )),
    };
    (t0.elapsed(), err)
}

/// Run `c`'s preStop hook (if any) before its stop signal, recording `FailedPreStopHook` on failure;
/// returns the grace left for the signal.
pub async fn pre_stop_reported(
    ctx: &super::Context,
    pod: &Pod,
    c: &Container,
    container_id: &str,
    pod_ip: Option<IpAddr>,
    grace: Duration,
) -> Duration {
    if Hook::PreStop.handler(c).is_none() {
        return grace;
    }
    let env = HookEnv {
        runtime: &ctx.runtime,
        run_dir: &ctx.run_dir,
        pod,
        container: c,
        container_id,
        pod_ip,
    };
    let (took, err) = pre_stop(&env, grace).await;
    if let Some(m) = err {
        tracing::info!(container = %container_id, error = %m, "preStop hook failed");
        ctx.recorder.warning(
            pod,
            Some(super::recorder::container_field(
                crate::runtime::labels::ContainerKind::App,
                &c.name,
            )),
            Hook::PreStop.failed_reason(),
            format!("PreStopHook failed: {m}"),
        );
    }
    remaining_grace(grace, took)
}

/// The kubelet waits for postStart without a limit; skiff caps it so a stuck hook cannot hold a worker forever.
const POST_START_LIMIT: Duration = Duration::from_secs(600);

/// Run the postStart hook of a just-started container; on failure record `FailedPostStartHook` and kill
/// the container (its exit is then handled like any other, restart policy included).
pub async fn post_start(
    ctx: &super::Context,
    plan: &super::start::StartPlan,
    container_id: &str,
    field: Option<String>,
) {
    let Some(h) = Hook::PostStart.handler(&plan.container) else {
        return;
    };
    let env = HookEnv {
        runtime: &ctx.runtime,
        run_dir: &ctx.run_dir,
        pod: &plan.pod,
        container: &plan.container,
        container_id,
        pod_ip: plan.pod_ip,
    };
    let Err(message) = run(h, &env, POST_START_LIMIT).await else {
        return;
    };
    let name = &plan.container.name;
    tracing::info!(container = %container_id, error = %message, "postStart hook failed");
    ctx.recorder.warning(
        &plan.pod,
        field.clone(),
        Hook::PostStart.failed_reason(),
        format!("PostStartHook failed: {message}"),
    );
    ctx.recorder.normal(
        &plan.pod,
        field,
        "Killing",
        format!("FailedPostStartHook: stopping container {name}"),
    );
    if let Err(e) = ctx.runtime.kill(container_id, 9).await {
        tracing::warn!(container = %container_id, error = %e, "cannot kill container after failed postStart");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ExecAction, Lifecycle, SleepAction};

    #[test]
    fn grace_rule() {
        let s = Duration::from_secs;
        assert_eq!(remaining_grace(s(30), s(10)), s(20));
        assert_eq!(remaining_grace(s(30), s(29)), s(2));
        assert_eq!(remaining_grace(s(5), s(60)), s(2));
    }

    #[test]
    fn handlers_by_hook() {
        let c = Container {
            lifecycle: Some(Lifecycle {
                post_start: Some(LifecycleHandler {
                    exec: Some(ExecAction {
                        command: Some(vec!["true".into()]),
                    }),
                    ..Default::default()
                }),
                pre_stop: Some(LifecycleHandler {
                    sleep: Some(SleepAction { seconds: 1 }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(
            Hook::PostStart
                .handler(&c)
                .is_some_and(|h| h.exec.is_some())
        );
        assert!(Hook::PreStop.handler(&c).is_some_and(|h| h.sleep.is_some()));
        assert!(Hook::PreStop.handler(&Container::default()).is_none());
        assert_eq!(Hook::PreStop.failed_reason(), "FailedPreStopHook");
    }
}
