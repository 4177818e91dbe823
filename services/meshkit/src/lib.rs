//! The parts every mesh service shares, so that each service crate holds only its own routes.
//!
//! A service built on meshkit logs one JSON object per event on stdout, answers `/healthz` and
//! `/readyz`, stops cleanly on SIGTERM or SIGINT, and carries a `healthcheck` subcommand in its
//! own binary for the image's exec-form HEALTHCHECK (the images have no shell).

pub mod client;
pub mod log;
pub mod server;
pub mod testing;

pub use client::Client;
pub use log::Logger;
pub use server::{Dependency, Service, main_with};
