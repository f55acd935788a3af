//! The CNI 1.1 wire format, shared by the skiff-cni plugin and the agent's CNI runtime.

pub mod config;
pub mod env;
pub mod error;
pub mod result;
pub mod version;

pub use config::{NetworkConfigList, PluginConfig, ValidAttachment};
pub use env::{Command, Env};
pub use error::{Error, ErrorCode, ErrorResult};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::{Version, VersionInfo};
