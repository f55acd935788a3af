//! The spec's error object (`{cniVersion, code, msg, details}`) and its well-known codes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A CNI error code. 0-99 are reserved by the spec; 100+ are plugin-specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    pub const INCOMPATIBLE_VERSION: ErrorCode = ErrorCode(1);
    pub const UNSUPPORTED_FIELD: ErrorCode = ErrorCode(2);
    pub const UNKNOWN_CONTAINER: ErrorCode = ErrorCode(3);
    pub const INVALID_ENVIRONMENT: ErrorCode = ErrorCode(4);
    pub const IO_FAILURE: ErrorCode = ErrorCode(5);
    pub const DECODING_FAILURE: ErrorCode = ErrorCode(6);
    pub const INVALID_NETWORK_CONFIG: ErrorCode = ErrorCode(7);
    /// Not in the spec table, but libcni defines it (`ErrInvalidNetNS`).
    pub const INVALID_NETNS: ErrorCode = ErrorCode(8);
    pub const TRY_AGAIN_LATER: ErrorCode = ErrorCode(11);
    /// STATUS: the plugin is not available for ADD.
    pub const NOT_AVAILABLE: ErrorCode = ErrorCode(50);
    /// STATUS: not available, and existing pods may lose connectivity.
    pub const NOT_AVAILABLE_LIMITED: ErrorCode = ErrorCode(51);
    /// libcni's `ErrInternal`.
    pub const INTERNAL: ErrorCode = ErrorCode(999);

    // skiff-cni's own codes (100+).
    /// A netlink operation failed.
    pub const NETLINK: ErrorCode = ErrorCode(100);
    /// The requested interface already exists in the container.
    pub const INTERFACE_EXISTS: ErrorCode = ErrorCode(101);
    /// IPAM has no free address left in the range.
    pub const IPAM_EXHAUSTED: ErrorCode = ErrorCode(102);
    /// Installing firewall (nftables/iptables) state failed.
    pub const FIREWALL: ErrorCode = ErrorCode(103);
    /// CHECK found state that does not match prevResult.
    pub const CHECK_FAILED: ErrorCode = ErrorCode(104);
    /// A requested address (`ips` capability, `IP=`) is held by another attachment.
    pub const IP_UNAVAILABLE: ErrorCode = ErrorCode(105);
    /// The runtime could not run a plugin (not found, timed out, killed).
    pub const PLUGIN_EXEC: ErrorCode = ErrorCode(110);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A CNI error as the spec carries it. Plugins print it on stdout and exit non-zero; runtimes parse
/// it from a failing plugin's stdout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    pub code: ErrorCode,
    pub msg: String,
    pub details: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CNI error {}: {}", self.code, self.msg)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl Error {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        Error {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Shorthand for code 7 (invalid network configuration).
    pub fn config(msg: impl Into<String>) -> Self {
        Error::new(ErrorCode::INVALID_NETWORK_CONFIG, msg)
    }

    /// Shorthand for code 4 (invalid environment variables).
    pub fn env(msg: impl Into<String>) -> Self {
        Error::new(ErrorCode::INVALID_ENVIRONMENT, msg)
    }

    /// Shorthand for code 5 with the failing operation as message and the io error as details.
    pub fn io(context: impl Into<String>, err: &std::io::Error) -> Self {
        Error::new(ErrorCode::IO_FAILURE, context).with_details(err.to_string())
    }

    /// The wire form for a given spec version.
    pub fn to_wire(&self, cni_version: &str) -> ErrorResult {
        ErrorResult {
            cni_version: cni_version.to_string(),
            code: self.code,
            msg: self.msg.clone(),
            details: self.details.clone(),
        }
    }
}

/// The JSON error object of §5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResult {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    pub code: ErrorCode,
    #[serde(default)]
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl From<ErrorResult> for Error {
    fn from(e: ErrorResult) -> Self {
        Error {
            code: e.code,
            msg: e.msg,
            details: e.details,
        }
    }
}
