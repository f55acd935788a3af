//! Pod status from the agent's view of its containers: phase, conditions, container statuses
//! (kubelet's `getPhase` and `generateAPIPodStatus`, restated).

use std::collections::HashMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::state::{ContainerState, Terminated};
use crate::runtime::cgroups;

/// The agent ended the pod itself (`activeDeadlineSeconds`): the pod is Failed with this reason and
/// message, whatever its containers did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFailure {
    pub reason: String,
    pub message: String,
    /// Node-pressure eviction: the kubelet also sets the `DisruptionTarget` condition.
    pub disruption: bool,
    /// How long the containers get to stop (the eviction manager's override: 0 for a hard threshold); `None`
    /// is the pod's own grace period.
    pub grace: Option<std::time::Duration>,
}

pub struct StatusInput<'a> {
    pub pod: &'a Pod,
    pub failure: Option<&'a PodFailure>,
    pub containers: &'a HashMap<String, ContainerState>,
    pub sandbox_ready: bool,
    pub pod_ip: Option<IpAddr>,
    pub host_ip: IpAddr,
    pub start_time: jiff::Timestamp,
    /// Conditions as last reported (for lastTransitionTime).
    pub previous: &'a [PodCondition],
    pub now: jiff::Timestamp,
}

pub fn restart_policy(spec: &PodSpec) -> &str {
    spec.restart_policy.as_deref().unwrap_or("Always")
}

/// Whether every init container has succeeded.
pub fn initialized(spec: &PodSpec, cs: &HashMap<String, ContainerState>) -> bool {
    spec.init_containers
        .iter()
        .flatten()
        .all(|c| cs.get(&c.name).is_some_and(ContainerState::succeeded))
}

pub fn phase(spec: &PodSpec, cs: &HashMap<String, ContainerState>) -> &'static str {
    let policy = restart_policy(spec);
    for ic in spec.init_containers.iter().flatten() {
        match cs.get(&ic.name) {
            Some(s) if s.succeeded() => continue,
            Some(s) if s.failed() && policy == "Never" => return "Failed",
            _ => return "Pending",
        }
    }
    let (mut pending, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &spec.containers {
        match cs.get(&c.name) {
            Some(s) if s.running.is_some() => running += 1,
            Some(s) if s.terminated.is_some() => {
                stopped += 1;
                if s.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
                    succeeded += 1;
                }
            }
            _ => pending += 1,
        }
    }
    if pending > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        if policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

pub fn is_terminal(phase: &str) -> bool {
    phase == "Succeeded" || phase == "Failed"
}

fn terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        container_id: Some(format!("containerd://{}", t.container_id)),
        exit_code: t.exit_code,
        reason: Some(t.reason.clone()),
        started_at: t.started_at.map(Time),
        finished_at: Some(Time(t.finished_at)),
        message: t.message.clone(),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: Option<String>) -> K8sState {
    K8sState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..Default::default()
    }
}

pub fn container_status(c: &ContainerState, default_waiting: &str) -> ContainerStatus {
    let term_state = |t: &Terminated| K8sState {
        terminated: Some(terminated(t)),
        ..Default::default()
    };
    let (state, last) = if let Some(r) = &c.running {
        let running = ContainerStateRunning {
            started_at: Some(Time(r.started_at)),
        };
        (
            K8sState {
                running: Some(running),
                ..Default::default()
            },
            c.previous.as_ref().map(term_state),
        )
    } else if let Some(w) = &c.waiting {
        (
            waiting(&w.reason, w.message.clone()),
            c.terminated.as_ref().map(term_state),
        )
    } else if let Some(t) = &c.terminated {
        (term_state(t), c.previous.as_ref().map(term_state))
    } else {
        (waiting(default_waiting, None), None)
    };
    let id = c
        .running
        .as_ref()
        .map(|r| &r.id)
        .or(c.terminated.as_ref().map(|t| &t.container_id));
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id: id.map(|id| format!("containerd://{id}")),
        state: Some(state),
        last_state: Some(last.unwrap_or_default()),
        ready: c.running.is_some()
            && c.probe_started.unwrap_or(true)
            && c.probe_ready.unwrap_or(true),
        started: Some(c.running.is_some() && c.probe_started.unwrap_or(true)),
        restart_count: i32::try_from(c.restart_count).unwrap_or(i32::MAX),
        ..Default::default()
    }
}

fn condition(
    previous: &[PodCondition],
    now: jiff::Timestamp,
    type_: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        last_transition_time: Some(since),
        reason: if ok { None } else { reason },
        message: if ok { None } else { message },
        ..Default::default()
    }
}

pub fn compute(input: &StatusInput<'_>) -> PodStatus {
    let empty = PodSpec::default();
    let spec = input.pod.spec.as_ref().unwrap_or(&empty);
    let cs = input.containers;
    let phase = match input.failure {
        Some(_) => "Failed",
        None => phase(spec, cs),
    };
    let init_done = initialized(spec, cs);
    let init_statuses: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| match cs.get(&c.name) {
            Some(s) => container_status(s, "PodInitializing"),
            None => container_status(
                &ContainerState::new(
                    &c.name,
                    crate::runtime::labels::ContainerKind::Init,
                    c.image.as_deref().unwrap_or_default(),
                ),
                "PodInitializing",
            ),
        })
        .collect();
    let default_app = if init_done {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let app_statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| match cs.get(&c.name) {
            Some(s) => container_status(s, default_app),
            None => container_status(
                &ContainerState::new(
                    &c.name,
                    crate::runtime::labels::ContainerKind::App,
                    c.image.as_deref().unwrap_or_default(),
                ),
                default_app,
            ),
        })
        .collect();

    // Ephemeral containers: reported, never ready, no part of the pod's phase or conditions.
    let ephemeral_statuses: Vec<ContainerStatus> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|e| {
            let mut s = match cs.get(&e.name) {
                Some(s) => container_status(s, "ContainerCreating"),
                None => container_status(
                    &ContainerState::new(
                        &e.name,
                        crate::runtime::labels::ContainerKind::Ephemeral,
                        e.image.as_deref().unwrap_or_default(),
                    ),
                    "ContainerCreating",
                ),
            };
            s.ready = false;
            s
        })
        .collect();
    let unready: Vec<&str> = app_statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let incomplete: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| !cs.get(&c.name).is_some_and(ContainerState::succeeded))
        .map(|c| c.name.as_str())
        .collect();
    let prev = input.previous;
    let now = input.now;
    let scheduled = input
        .pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled").cloned())
        .unwrap_or_else(|| condition(prev, now, "PodScheduled", true, None, None));
    let (ready_reason, ready_msg) = if phase == "Succeeded" {
        (Some("PodCompleted".to_string()), None)
    } else {
        (
            Some("ContainersNotReady".to_string()),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let all_ready = unready.is_empty() && !is_terminal(phase);
    let mut conditions = vec![
        condition(
            prev,
            now,
            "PodReadyToStartContainers",
            input.sandbox_ready,
            None,
            None,
        ),
        condition(
            prev,
            now,
            "Initialized",
            init_done,
            Some("ContainersNotInitialized".into()),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        ),
        condition(
            prev,
            now,
            "Ready",
            all_ready,
            ready_reason.clone(),
            ready_msg.clone(),
        ),
        condition(
            prev,
            now,
            "ContainersReady",
            all_ready,
            ready_reason,
            ready_msg,
        ),
        scheduled,
    ];
    if let Some(f) = input.failure.filter(|f| f.disruption) {
        conditions.push(PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some("TerminationByKubelet".into()),
            message: Some(f.message.clone()),
            last_transition_time: prev
                .iter()
                .find(|c| c.type_ == "DisruptionTarget")
                .and_then(|c| c.last_transition_time.clone())
                .or(Some(Time(now))),
            ..Default::default()
        });
    }

    let pod_ip = input.pod_ip.map(|ip| ip.to_string());
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(input.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: input.host_ip.to_string(),
        }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: Some(Time(input.start_time)),
        qos_class: Some(cgroups::qos_class(input.pod).to_string()),
        init_container_statuses: if init_statuses.is_empty() {
            None
        } else {
            Some(init_statuses)
        },
        container_statuses: Some(app_statuses),
        ephemeral_container_statuses: (!ephemeral_statuses.is_empty())
            .then_some(ephemeral_statuses),
        reason: input.failure.map(|f| f.reason.clone()),
        message: input.failure.map(|f| f.message.clone()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::labels::ContainerKind;
    use k8s_openapi::api::core::v1::Container;

    fn spec(inits: &[&str], apps: &[&str], policy: &str) -> PodSpec {
        let c = |n: &&str| Container {
            name: n.to_string(),
            image: Some("busybox".into()),
            ..Default::default()
        };
        PodSpec {
            init_containers: if inits.is_empty() {
                None
            } else {
                Some(inits.iter().map(c).collect())
            },
            containers: apps.iter().map(c).collect(),
            restart_policy: Some(policy.into()),
            ..Default::default()
        }
    }

    fn st(
        name: &str,
        kind: ContainerKind,
        f: impl FnOnce(&mut ContainerState),
    ) -> (String, ContainerState) {
        let mut s = ContainerState::new(name, kind, "busybox");
        f(&mut s);
        (name.to_string(), s)
    }

    fn run(s: &mut ContainerState) {
        s.started(0, format!("u-{}-0", s.name), jiff::Timestamp::now());
    }

    fn exit(code: i32) -> impl FnOnce(&mut ContainerState) {
        move |s| {
            run(s);
            s.exited(code, jiff::Timestamp::now());
        }
    }

    #[test]
    fn phases() {
        let sp = spec(&["init"], &["app"], "Always");
        let mut cs = HashMap::new();
        assert_eq!(phase(&sp, &cs), "Pending");
        cs.extend([st("init", ContainerKind::Init, exit(0))]);
        assert_eq!(phase(&sp, &cs), "Pending");
        cs.extend([st("app", ContainerKind::App, run)]);
        assert_eq!(phase(&sp, &cs), "Running");
        cs.extend([st("app", ContainerKind::App, exit(1))]);
        assert_eq!(phase(&sp, &cs), "Running", "Always restarts");

        let sp = spec(&["init"], &["app"], "Never");
        let cs: HashMap<_, _> = [st("init", ContainerKind::Init, exit(2))].into();
        assert_eq!(phase(&sp, &cs), "Failed");

        let sp = spec(&[], &["a", "b"], "Never");
        let cs: HashMap<_, _> = [
            st("a", ContainerKind::App, exit(0)),
            st("b", ContainerKind::App, exit(0)),
        ]
        .into();
        assert_eq!(phase(&sp, &cs), "Succeeded");
        let cs: HashMap<_, _> = [
            st("a", ContainerKind::App, exit(0)),
            st("b", ContainerKind::App, exit(3)),
        ]
        .into();
        assert_eq!(phase(&sp, &cs), "Failed");
        let cs: HashMap<_, _> = [
            st("a", ContainerKind::App, exit(0)),
            st("b", ContainerKind::App, run),
        ]
        .into();
        assert_eq!(phase(&sp, &cs), "Running");

        let sp = spec(&[], &["a"], "OnFailure");
        let cs: HashMap<_, _> = [st("a", ContainerKind::App, exit(1))].into();
        assert_eq!(phase(&sp, &cs), "Running");
        let cs: HashMap<_, _> = [st("a", ContainerKind::App, exit(0))].into();
        assert_eq!(phase(&sp, &cs), "Succeeded");
    }

    fn pod(sp: PodSpec) -> Pod {
        Pod {
            spec: Some(sp),
            ..Default::default()
        }
    }

    /// The input for a pod on a fresh node: sandbox ready, no failure, nothing reported before.
    fn input<'a>(
        pod: &'a Pod,
        cs: &'a HashMap<String, ContainerState>,
        pod_ip: Option<IpAddr>,
        now: jiff::Timestamp,
    ) -> StatusInput<'a> {
        StatusInput {
            pod,
            failure: None,
            containers: cs,
            sandbox_ready: true,
            pod_ip,
            host_ip: "10.0.0.1".parse().expect("ip"),
            start_time: now,
            previous: &[],
            now,
        }
    }

    #[test]
    fn status_running_pod() {
        let p = pod(spec(&["init"], &["app"], "Always"));
        let cs: HashMap<_, _> = [
            st("init", ContainerKind::Init, exit(0)),
            st("app", ContainerKind::App, run),
        ]
        .into();
        let now = jiff::Timestamp::now();
        let input = input(&p, &cs, Some("10.244.0.9".parse().expect("ip")), now);
        let s = compute(&input);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.0.9"));
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        let conds = s.conditions.clone().unwrap_or_default();
        let get = |t: &str| {
            conds
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| c.status.clone())
        };
        for t in [
            "PodScheduled",
            "PodReadyToStartContainers",
            "Initialized",
            "ContainersReady",
            "Ready",
        ] {
            assert_eq!(get(t).as_deref(), Some("True"), "{t}");
        }
        let app = &s.container_statuses.unwrap_or_default()[0];
        assert!(app.ready);
        assert_eq!(app.container_id.as_deref(), Some("containerd://u-app-0"));
        assert!(
            app.state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .is_some()
        );
        let init = &s.init_container_statuses.unwrap_or_default()[0];
        let t = init
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .cloned()
            .unwrap_or_default();
        assert_eq!(t.reason.as_deref(), Some("Completed"));

        // Transition times are kept while a condition does not change.
        let later = now + jiff::SignedDuration::from_secs(5);
        let input = StatusInput {
            previous: &conds,
            now: later,
            ..input
        };
        let s2 = compute(&input);
        let ready = s2
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready");
        assert_eq!(
            ready.and_then(|c| c.last_transition_time).map(|t| t.0),
            Some(now)
        );
    }

    #[test]
    fn a_failure_of_the_agent_makes_the_pod_failed() {
        let p = pod(spec(&[], &["app"], "Always"));
        let cs: HashMap<_, _> = [st("app", ContainerKind::App, run)].into();
        let failure = PodFailure {
            reason: "DeadlineExceeded".into(),
            message: "Pod was active on the node longer than the specified deadline".into(),
            disruption: false,
            grace: None,
        };
        let now = jiff::Timestamp::now();
        let s = compute(&StatusInput {
            failure: Some(&failure),
            ..input(&p, &cs, None, now)
        });
        assert_eq!(
            s.phase.as_deref(),
            Some("Failed"),
            "even while the container still runs"
        );
        assert_eq!(s.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(s.message, Some(failure.message.clone()));
        let ready = s
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap_or_default();
        assert_eq!(ready.status, "False");
    }

    #[test]
    fn status_crash_loop_and_waiting() {
        let p = pod(spec(&[], &["app"], "Always"));
        let mut cs: HashMap<_, _> = [st("app", ContainerKind::App, exit(1))].into();
        if let Some(c) = cs.get_mut("app") {
            c.waiting = Some(super::super::state::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some("back-off 10s".into()),
            });
        }
        let now = jiff::Timestamp::now();
        let input = input(&p, &cs, None, now);
        let s = compute(&input);
        let app = &s.container_statuses.unwrap_or_default()[0];
        assert_eq!(
            app.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref()),
            Some("CrashLoopBackOff")
        );
        assert_eq!(
            app.last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code),
            Some(1)
        );
        let ready = s
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap_or_default();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [app]")
        );

        let empty: HashMap<String, ContainerState> = HashMap::new();
        let s = compute(&StatusInput {
            containers: &empty,
            ..input
        });
        let app = &s.container_statuses.unwrap_or_default()[0];
        assert_eq!(
            app.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref()),
            Some("ContainerCreating")
        );
    }

    #[test]
    fn ephemeral_containers_are_reported_apart() {
        let mut sp = spec(&[], &["app"], "Always");
        sp.ephemeral_containers = Some(vec![
            k8s_openapi::api::core::v1::EphemeralContainer {
                name: "debugger".into(),
                image: Some("busybox".into()),
                ..Default::default()
            },
            k8s_openapi::api::core::v1::EphemeralContainer {
                name: "later".into(),
                image: Some("busybox".into()),
                ..Default::default()
            },
        ]);
        let p = pod(sp);
        let cs: HashMap<_, _> = [
            st("app", ContainerKind::App, run),
            st("debugger", ContainerKind::Ephemeral, exit(1)),
        ]
        .into();
        let s = compute(&input(&p, &cs, None, jiff::Timestamp::now()));
        assert_eq!(
            s.phase.as_deref(),
            Some("Running"),
            "a failed debugger fails nothing"
        );
        let ready = s
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready");
        assert_eq!(ready.map(|c| c.status).as_deref(), Some("True"));
        assert_eq!(s.container_statuses.map(|v| v.len()), Some(1));
        let eph = s.ephemeral_container_statuses.unwrap_or_default();
        assert_eq!(eph.len(), 2);
        assert_eq!(
            eph[0]
                .state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .map(|t| t.exit_code),
            Some(1)
        );
        assert_eq!(
            eph[1]
                .state
                .as_ref()
                .and_then(|st| st.waiting.as_ref())
                .and_then(|w| w.reason.as_deref()),
            Some("ContainerCreating")
        );
        assert!(eph.iter().all(|e| !e.ready));
    }
}
