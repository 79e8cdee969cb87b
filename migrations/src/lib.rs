//! Database migrations for the pet shop.
