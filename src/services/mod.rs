//! Use cases. Everything a route can do is decided here, from parsed input and the caller's
//! resolved identity; nothing here knows about HTTP.

pub mod accounts;
mod error;
pub mod policy;
pub mod profiles;
pub mod rbac;
pub mod throttle;
pub mod users;

use std::sync::Arc;

use chrono::TimeDelta;
use sea_orm::DatabaseConnection;

pub use error::{Conflict, ServiceError};
pub use policy::{Caller, Permission};

use crate::auth::{PasswordHasher, TokenService};
use crate::clock::Clock;
use crate::domain::PasswordPolicy;
use crate::domain::throttle::ThrottlePolicy;
use crate::store::Direct;
use crate::store::sqlite_direct::SqliteDirect;

/// What every use case needs: the database, credentials machinery, the clock and the rules.
#[derive(Clone)]
pub struct Core {
    pub db: DatabaseConnection,
    /// The per-request lookups that skip sea-orm, where the backend has them.
    pub direct: Option<Direct>,
    pub hasher: PasswordHasher,
    pub tokens: TokenService,
    pub clock: Clock,
    pub password_policy: PasswordPolicy,
    /// How long a session lives after its last token refresh.
    pub session_ttl: TimeDelta,
    /// How long a spent refresh token may still be presented (concurrent refreshes from one
    /// client) before a reuse counts as theft.
    pub refresh_grace: TimeDelta,
    pub throttle: ThrottlePolicy,
}

impl Core {
    /// The SQLite direct lookups and writes, when the database is a SQLite file.
    pub fn sqlite_direct(&self) -> Option<&Arc<SqliteDirect>> {
        self.direct.as_ref().and_then(Direct::sqlite)
    }
}
