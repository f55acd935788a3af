//! Running work inside a network namespace: a dedicated OS thread `setns`es into the namespace
//! first and only then opens its netlink socket, so the socket is bound to that namespace. The
//! thread ends afterwards, so no thread of the process stays in the container's namespace.

use std::fs::File;
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use nix::sched::{CloneFlags, setns};

use super::netlink::Netlink;
use crate::spec::{Error, ErrorCode};

/// Open a netns path; code 8 (invalid netns) when it is missing or not a namespace.
pub fn open(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|e| {
        Error::new(
            ErrorCode::INVALID_NETNS,
            format!("failed to open netns {}", path.display()),
        )
        .with_details(e.to_string())
    })
}

/// Run `f` on a fresh thread that has joined the network namespace `ns`.
pub fn run_in<T, F>(ns: &File, f: F) -> Result<T, Error>
where
    T: Send,
    F: FnOnce() -> Result<T, Error> + Send,
{
    thread::scope(|s| {
        s.spawn(|| {
            setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| {
                Error::new(
                    ErrorCode::INVALID_NETNS,
                    "failed to enter the network namespace",
                )
                .with_details(e.to_string())
            })?;
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::new(
                ErrorCode::INTERNAL,
                "netns worker thread panicked",
            ))
        })
    })
}

type Job = Box<dyn FnOnce(&mut Netlink) + Send>;

/// One thread inside a network namespace, with a netlink socket opened there, that runs jobs
/// until dropped: a command that needs the namespace several times (ADD: the interface check,
/// then the configuration) pays for one thread, which matters on a loaded host where every new
/// thread waits to be scheduled.
pub struct Worker {
    tx: Option<mpsc::Sender<Job>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Worker {
    /// Start the thread in `ns`; fails when the namespace cannot be entered.
    pub fn start(ns: File) -> Result<Worker, Error> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), Error>>();
        let handle = thread::spawn(move || {
            let entered = setns(&ns, CloneFlags::CLONE_NEWNET)
                .map_err(|e| {
                    Error::new(
                        ErrorCode::INVALID_NETNS,
                        "failed to enter the network namespace",
                    )
                    .with_details(e.to_string())
                })
                .and_then(|()| {
                    Netlink::open()
                        .map_err(super::link::nl_err("failed to open netlink in the netns"))
                });
            let mut nl = match entered {
                Ok(nl) => {
                    let _ = ready_tx.send(Ok(()));
                    nl
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while let Ok(job) = rx.recv() {
                job(&mut nl);
            }
        });
        ready_rx
            .recv()
            .unwrap_or_else(|_| Err(Error::new(ErrorCode::INTERNAL, "netns worker died")))?;
        Ok(Worker {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Run `f` on the worker and wait for its answer.
    pub fn run<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Netlink) -> Result<T, Error> + Send + 'static,
    {
        let stopped = || Error::new(ErrorCode::INTERNAL, "netns worker stopped");
        let (rtx, rrx) = mpsc::channel();
        self.tx
            .as_ref()
            .ok_or_else(stopped)?
            .send(Box::new(move |nl: &mut Netlink| {
                let _ = rtx.send(f(nl));
            }))
            .map_err(|_| stopped())?;
        rrx.recv().map_err(|_| stopped())?
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
