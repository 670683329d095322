use sea_orm::{DbErr, SqlErr};

use crate::domain::FieldErrors;
use crate::store::users::Taken;

/// Which unique value a write collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    Email,
    Username,
    /// A role or permission name.
    Name(&'static str),
}

impl From<Taken> for Conflict {
    fn from(taken: Taken) -> Self {
        match taken {
            Taken::Email => Self::Email,
            Taken::Username => Self::Username,
        }
    }
}

/// What went wrong in a use case, in terms each API surface can render its own way.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("validation failed: {0}")]
    Validation(FieldErrors),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A referenced id (in a request body) that does not exist.
    #[error("{0} {1} not found")]
    NotFoundId(&'static str, i64),
    #[error("duplicate {0:?}")]
    Duplicate(Conflict),
    /// Some other unique value was taken; [`ServiceError::named`] says which.
    #[error("name already taken")]
    NameTaken,
    /// A rule forbids the operation in the current state (e.g. removing the last admin).
    #[error("{0}")]
    Conflict(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(&'static str),
    /// Unknown user or wrong password: deliberately one error.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("inactive user")]
    InactiveUser,
    /// Too many failed logins; try again after this many seconds.
    #[error("too many failed logins")]
    Throttled(u64),
    /// Missing, invalid, expired or revoked credentials on a request.
    #[error("not authenticated: {0}")]
    Unauthenticated(&'static str),
    #[error("database unavailable")]
    Unavailable(#[source] DbErr),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ServiceError {
    /// Names the kind of record a unique-name violation was about (`role`, `permission`).
    pub fn named(self, what: &'static str) -> Self {
        match self {
            Self::Duplicate(_) | Self::NameTaken => Self::Duplicate(Conflict::Name(what)),
            other => other,
        }
    }
}

impl From<DbErr> for ServiceError {
    fn from(err: DbErr) -> Self {
        if let Some(SqlErr::UniqueConstraintViolation(message)) = err.sql_err() {
            return match Taken::named_in(&message) {
                Some(taken) => Self::Duplicate(taken.into()),
                None => Self::NameTaken,
            };
        }
        if let Some(SqlErr::ForeignKeyConstraintViolation(_)) = err.sql_err() {
            return Self::Conflict("The record is still referenced by other data");
        }
        if crate::store::is_unavailable(&err) {
            return Self::Unavailable(err);
        }
        Self::Internal(anyhow::Error::new(err).context("database error"))
    }
}
