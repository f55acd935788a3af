//! The one error type of the image service.
//!
//! It is `Clone` because concurrent `ensure` calls for the same reference share one pull and all of them
//! receive its outcome.

use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("image {0} is not present locally and the pull policy is Never")]
    NeverPull(String),
    #[error("image {reference} not found: {detail}")]
    NotFound { reference: String, detail: String },
    #[error("not authorized to pull {reference} from {endpoint}: {detail}")]
    Unauthorized {
        reference: String,
        endpoint: String,
        detail: String,
    },
    #[error("registry {endpoint} answered {status} for {url}: {detail}")]
    Registry {
        endpoint: String,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("HTTP request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: Arc<reqwest::Error>,
    },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what} is larger than {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("malformed {what}: {detail}")]
    Malformed { what: String, detail: String },
    #[error("unsupported {what}: {detail}")]
    Unsupported { what: String, detail: String },
    #[error("no manifest for platform {platform} in {reference}")]
    NoMatchingPlatform { reference: String, platform: String },
    #[error("containerd {op} failed: {source}")]
    Containerd {
        op: String,
        #[source]
        source: tonic::Status,
    },
    #[error("registry configuration {path}: {detail}")]
    Config { path: String, detail: String },
    #[error("image pull task failed: {0}")]
    Internal(String),
}

impl ImageError {
    /// The reason string the kubelet reports in a waiting container state for this error.
    pub fn kubelet_reason(&self) -> &'static str {
        match self {
            ImageError::InvalidReference { .. } => "InvalidImageName",
            ImageError::NeverPull(_) => "ErrImageNeverPull",
            _ => "ErrImagePull",
        }
    }

    /// True when the registry said the image (or one of its blobs) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ImageError::NotFound { .. })
    }

    pub(crate) fn containerd(op: impl Into<String>, source: tonic::Status) -> Self {
        ImageError::Containerd {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn http(url: impl Into<String>, source: reqwest::Error) -> Self {
        ImageError::Http {
            url: url.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn malformed(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        ImageError::Malformed {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}
