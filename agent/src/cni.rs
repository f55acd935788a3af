//! CNI runtime (placeholder).
