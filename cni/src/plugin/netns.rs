//! Running work inside a network namespace: a dedicated OS thread `setns`es into the namespace
//! first and only then opens its netlink socket, so the socket is bound to that namespace. The
//! thread ends afterwards, so no thread of the process stays in the container's namespace.

use std::fs::File;
use std::path::Path;
use std::thread;

use nix::sched::{CloneFlags, setns};

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
