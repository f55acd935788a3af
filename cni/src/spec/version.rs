//! Spec versions: parsing, ordering, the plugin's VERSION answer and negotiation helpers.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::{Error, ErrorCode};

/// The newest spec version this crate speaks.
pub const CURRENT: &str = "1.1.0";

/// Every version skiff-cni (plugin and runtime) can read and write. 0.1.0/0.2.0 used a different
/// result shape (`ip4`/`ip6`) and are not supported.
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A `major.minor.patch` spec version, ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// The first version with CHECK.
    pub const CHECK: Version = Version::new(0, 4, 0);
    /// The first version with the 1.x result shape (no `ips[].version`).
    pub const V1: Version = Version::new(1, 0, 0);
    /// The first version with STATUS, GC and the 1.1 result attributes.
    pub const V1_1: Version = Version::new(1, 1, 0);

    /// Whether this crate supports the version.
    pub fn is_supported(&self) -> bool {
        SUPPORTED
            .iter()
            .any(|s| s.parse::<Version>().ok() == Some(*self))
    }

    /// Parse and require a supported version; error code 1 otherwise.
    pub fn parse_supported(s: &str) -> Result<Version, Error> {
        let v: Version = s
            .parse()
            .map_err(|e: String| Error::new(ErrorCode::INCOMPATIBLE_VERSION, e))?;
        if !v.is_supported() {
            return Err(Error::new(
                ErrorCode::INCOMPATIBLE_VERSION,
                format!(
                    "incompatible CNI versions: config is {s:?}, plugin supports {SUPPORTED:?}"
                ),
            ));
        }
        Ok(v)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid CNI version {s:?}");
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() > 3 {
            return Err(bad());
        }
        let mut nums = [0u32; 3];
        for (slot, part) in nums.iter_mut().zip(&parts) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            *slot = part.parse().map_err(|_| bad())?;
        }
        Ok(Version::new(nums[0], nums[1], nums[2]))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The answer to `CNI_COMMAND=VERSION`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(rename = "supportedVersions", default)]
    pub supported_versions: Vec<String>,
}

impl VersionInfo {
    /// skiff-cni's own answer, echoing the version the caller asked in.
    pub fn ours(asked: Option<&str>) -> VersionInfo {
        VersionInfo {
            cni_version: asked.unwrap_or(CURRENT).to_string(),
            supported_versions: SUPPORTED.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Whether the plugin claims to support `v`.
    pub fn supports(&self, v: Version) -> bool {
        self.supported_versions
            .iter()
            .any(|s| s.parse::<Version>().ok() == Some(v))
    }
}

/// Pick the highest version from `candidates` (a list's `cniVersion` ∪ `cniVersions`) that this crate
/// supports and, when `plugins` is given, that every plugin's VERSION answer lists. Unparsable and
/// too-new entries are skipped, as libcni does.
pub fn negotiate<'a>(
    candidates: impl IntoIterator<Item = &'a str>,
    plugins: &[VersionInfo],
) -> Option<Version> {
    candidates
        .into_iter()
        .filter_map(|s| s.parse::<Version>().ok())
        .filter(|v| v.is_supported())
        .filter(|v| plugins.iter().all(|p| p.supports(*v)))
        .max()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let a: Version = "0.3.1".parse().unwrap();
        let b: Version = "1.0.0".parse().unwrap();
        assert!(a < b);
        assert_eq!("1.1".parse::<Version>(), Ok(Version::new(1, 1, 0)));
        assert!("1.x.0".parse::<Version>().is_err());
        assert!("".parse::<Version>().is_err());
        assert!("1.0.0.0".parse::<Version>().is_err());
        assert!(Version::parse_supported("0.2.0").is_err());
        assert!(Version::parse_supported("1.1.0").is_ok());
    }

    #[test]
    fn negotiates_highest_common() {
        let bridge = VersionInfo {
            cni_version: "1.0.0".into(),
            supported_versions: vec!["0.4.0".into(), "1.0.0".into()],
        };
        assert_eq!(
            negotiate(["1.1.0", "1.0.0", "2.0.0", "junk"], &[]),
            Some(Version::V1_1)
        );
        assert_eq!(
            negotiate(["1.1.0", "1.0.0"], std::slice::from_ref(&bridge)),
            Some(Version::V1)
        );
        assert_eq!(negotiate(["1.1.0"], &[bridge]), None);
    }
}
