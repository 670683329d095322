//! users-api: a user management service with two HTTP surfaces over one core.
//!
//! Layers: [`http`] extracts and maps, [`services`] decides, [`store`] persists. [`domain`] holds
//! the pure rules, [`auth`] the credential machinery, and [`startup`] wires it all together.

pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod import;
pub mod services;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;

pub use config::Settings;
pub use startup::Application;
