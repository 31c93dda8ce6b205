//! Conformance test helpers.
