//! The runtime's error type.

use std::path::PathBuf;
use std::time::Duration;

use skiff_cni::spec;

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("no CNI network config (*.conflist) in {0}")]
    NoConfig(PathBuf),
    #[error("CNI network config {path}: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: spec::Error,
    },
    #[error("invalid CIDR {value:?} for {what}")]
    Cidr { what: &'static str, value: String },
    #[error("CNI plugin {plugin:?} not found in {dirs:?}")]
    PluginNotFound { plugin: String, dirs: Vec<PathBuf> },
    /// The plugin answered with the spec's error JSON (or failed without one: code 110).
    #[error("CNI plugin {plugin} {command} failed (code {code}): {msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
    Plugin {
        plugin: String,
        command: String,
        code: u32,
        msg: String,
        details: String,
    },
    #[error("CNI plugin {plugin} {command} timed out after {timeout:?}")]
    Timeout {
        plugin: String,
        command: String,
        timeout: Duration,
    },
    #[error("CNI plugin {plugin} {command} returned an unusable result: {source}")]
    BadResult {
        plugin: String,
        command: String,
        #[source]
        source: spec::Error,
    },
    #[error("no cached CNI result for {container_id}/{ifname}")]
    NotAdded {
        container_id: String,
        ifname: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// GC keeps going past errors and reports all of them.
    #[error("CNI GC had {} error(s): {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Multiple(Vec<CniError>),
}

impl CniError {
    /// The CNI error code, when the failure came from a plugin's error JSON.
    pub fn code(&self) -> Option<u32> {
        match self {
            CniError::Plugin { code, .. } => Some(*code),
            CniError::Config { source, .. } | CniError::BadResult { source, .. } => {
                Some(source.code.0)
            }
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> CniError {
        CniError::Io {
            context: context.into(),
            source,
        }
    }
}
