//! What the agent knows about each container of a pod (actual state, rebuilt from containerd on restart).

use std::time::Instant;

use crate::runtime::labels::ContainerKind;

use super::backoff::Backoff;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub id: String,
    pub started_at: jiff::Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub container_id: String,
    pub exit_code: i32,
    pub reason: String,
    pub started_at: Option<jiff::Timestamp>,
    pub finished_at: jiff::Timestamp,
    /// What the process wrote to its termination-message file.
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ContainerState {
    pub name: String,
    pub kind: ContainerKind,
    pub image: String,
    pub image_id: String,
    /// Attempts so far; the next start uses attempt `restart_count + 1` (or 0 when never started).
    pub restart_count: u32,
    pub started_once: bool,
    pub running: Option<Running>,
    pub terminated: Option<Terminated>,
    pub previous: Option<Terminated>,
    pub waiting: Option<Waiting>,
    pub oom: bool,
    /// Signal that asks the process to stop (the image's STOPSIGNAL, else SIGTERM).
    pub stop_signal: u32,
    pub backoff: Backoff,
    pub pull_backoff: Backoff,
    pub next_start: Option<Instant>,
    /// Readiness probe result of the running instance (`None`: no readiness probe).
    pub probe_ready: Option<bool>,
    /// Startup probe result of the running instance (`None`: no startup probe).
    pub probe_started: Option<bool>,
}

/// Terminated reason for an exit code (conformance mapping; OOM is reported by containerd separately).
pub fn exit_reason(code: i32, oom: bool) -> &'static str {
    if oom {
        "OOMKilled"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

impl ContainerState {
    pub fn new(name: &str, kind: ContainerKind, image: &str) -> Self {
        Self {
            name: name.to_string(),
            kind,
            image: image.to_string(),
            image_id: String::new(),
            restart_count: 0,
            started_once: false,
            running: None,
            terminated: None,
            previous: None,
            waiting: None,
            oom: false,
            stop_signal: 15,
            backoff: Backoff::default(),
            pull_backoff: Backoff::default(),
            next_start: None,
            probe_ready: None,
            probe_started: None,
        }
    }

    pub fn next_attempt(&self) -> u32 {
        if self.started_once {
            self.restart_count + 1
        } else {
            0
        }
    }

    /// Exited with 0 and not running again.
    pub fn succeeded(&self) -> bool {
        self.running.is_none() && self.terminated.as_ref().is_some_and(|t| t.exit_code == 0)
    }

    pub fn failed(&self) -> bool {
        self.running.is_none() && self.terminated.as_ref().is_some_and(|t| t.exit_code != 0)
    }

    /// Record a new instance as running; the previous termination becomes `lastState`.
    pub fn started(&mut self, attempt: u32, id: String, at: jiff::Timestamp) {
        if self.terminated.is_some() {
            self.previous = self.terminated.take();
        }
        self.restart_count = attempt;
        self.started_once = true;
        self.running = Some(Running { id, started_at: at });
        self.waiting = None;
        self.oom = false;
        self.next_start = None;
        self.probe_ready = None;
        self.probe_started = None;
    }

    /// Record the end of the running instance.
    pub fn exited(&mut self, exit_code: i32, finished_at: jiff::Timestamp) -> Option<&Terminated> {
        let run = self.running.take()?;
        if let Some(t) = self.terminated.take() {
            self.previous = Some(t);
        }
        self.terminated = Some(Terminated {
            container_id: run.id,
            exit_code,
            reason: exit_reason(exit_code, self.oom).to_string(),
            started_at: Some(run.started_at),
            finished_at,
            message: None,
        });
        self.terminated.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        let mut c = ContainerState::new("app", ContainerKind::App, "busybox");
        assert_eq!(c.next_attempt(), 0);
        let t0 = jiff::Timestamp::now();
        c.started(0, "u-app-0".into(), t0);
        assert_eq!(c.next_attempt(), 1);
        assert!(c.exited(3, t0).is_some());
        assert!(c.failed());
        assert_eq!(
            c.terminated.as_ref().map(|t| t.reason.as_str()),
            Some("Error")
        );
        c.started(1, "u-app-1".into(), t0);
        assert_eq!(c.restart_count, 1);
        assert_eq!(c.previous.as_ref().map(|t| t.exit_code), Some(3));
        assert!(c.terminated.is_none());
        c.oom = true;
        c.exited(137, t0);
        assert_eq!(
            c.terminated.as_ref().map(|t| t.reason.as_str()),
            Some("OOMKilled")
        );
        assert!(c.exited(0, t0).is_none(), "no running instance");
    }

    #[test]
    fn reasons() {
        assert_eq!(exit_reason(0, false), "Completed");
        assert_eq!(exit_reason(1, false), "Error");
        assert_eq!(exit_reason(137, true), "OOMKilled");
    }
}
