//! Cross-crate end-to-end tests and their support code.
