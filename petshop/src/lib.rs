//! The pet shop service.
