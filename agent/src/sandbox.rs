//! Pinned pod namespaces (placeholder).
