//! The authorization policy: the single place that decides what a caller may do.
//!
//! Routes never inspect flags or roles. A use case asks the [`Caller`] for a named
//! [`Permission`], or for "self or permission", and proceeds only with the grant it gets back.

use std::sync::Arc;

use super::ServiceError;
use crate::store::Confirmed;
use crate::store::entities::user::Model as User;
use crate::store::sessions::Grant;

/// Permissions are named `resource:action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    UserRead,
    UserWrite,
    UserDelete,
    RbacRead,
    RbacWrite,
    AdminAll,
}

impl Permission {
    pub fn name(self) -> &'static str {
        match self {
            Self::UserRead => "user:read",
            Self::UserWrite => "user:write",
            Self::UserDelete => "user:delete",
            Self::RbacRead => "rbac:read",
            Self::RbacWrite => "rbac:write",
            Self::AdminAll => "admin:all",
        }
    }
}

/// The authenticated user behind a request, with the session the token belongs to.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user, the names of their roles and the `resource:action` of every permission those
    /// roles grant, shared with the lookup's kept answer.
    grant: Arc<Grant>,
    pub session_id: String,
    /// What the lookup that found this caller confirmed, when a direct lookup did.
    confirmed: Option<Confirmed>,
}

/// How a caller got access to an operation on one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The caller acts on themself.
    Own,
    /// The caller holds the permission.
    Granted,
}

impl Caller {
    pub fn new(grant: Arc<Grant>, session_id: String) -> Self {
        Self {
            grant,
            session_id,
            confirmed: None,
        }
    }

    /// The caller's account, as the auth lookup found it.
    pub fn user(&self) -> &User {
        &self.grant.user
    }

    /// Names of the caller's roles.
    pub fn roles(&self) -> &[String] {
        &self.grant.roles
    }

    /// The same caller, found by a direct lookup that confirmed `confirmed`.
    pub fn confirmed_at(self, confirmed: Option<Confirmed>) -> Self {
        Self { confirmed, ..self }
    }

    /// What the request's later lookups may take as already confirmed (see [`Confirmed`]).
    pub fn confirmed(&self) -> Option<Confirmed> {
        self.confirmed
    }

    /// The caller's effective permissions, `admin:all` included when the `is_admin` flag is set.
    pub fn permissions(&self) -> Vec<String> {
        let mut all = self.grant.permissions.clone();
        if self.user().is_admin && !all.iter().any(|p| p == Permission::AdminAll.name()) {
            all.push(Permission::AdminAll.name().to_owned());
            all.sort();
        }
        all
    }

    pub fn id(&self) -> i64 {
        self.user().id
    }

    /// `is_admin` and `admin:all` imply every permission.
    pub fn has(&self, permission: Permission) -> bool {
        self.has_named(permission.name())
    }

    pub fn has_named(&self, name: &str) -> bool {
        self.user().is_admin
            || self
                .grant
                .permissions
                .iter()
                .any(|p| p == name || p == Permission::AdminAll.name())
    }

    pub fn require(&self, permission: Permission) -> Result<Access, ServiceError> {
        if self.has(permission) {
            Ok(Access::Granted)
        } else {
            Err(ServiceError::Forbidden(format!(
                "Permission denied: {} required",
                permission.name()
            )))
        }
    }

    /// Access to `target` for the user themself, or for holders of `permission`.
    pub fn require_self_or(&self, target: i64, permission: Permission) -> Result<Access, ServiceError> {
        if self.has(permission) {
            Ok(Access::Granted)
        } else if target == self.id() {
            Ok(Access::Own)
        } else {
            self.require(permission)
        }
    }
}
