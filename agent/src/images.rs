//! Image pulls (placeholder).
