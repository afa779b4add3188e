//! Shared test helpers.
pub mod faulty;
