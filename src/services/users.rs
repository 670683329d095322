//! Reading, changing and deleting users, under the policy's rules.

use sea_orm::{ActiveValue::Set, TransactionTrait};

use super::policy::Access;
use super::{Caller, Core, Permission, ServiceError};
use crate::domain::{Email, FieldError, FieldErrors, Password, SecretString, Username};
use crate::store::entities::user::Model as User;
use crate::store::users::{self, ListFilter};

/// The largest page a list returns.
pub const MAX_PAGE: u64 = 1000;

/// A page of users and the total number matching.
pub async fn list(
    core: &Core,
    caller: &Caller,
    filter: &ListFilter,
    skip: u64,
    limit: u64,
) -> Result<(Vec<User>, u64), ServiceError> {
    caller.require(Permission::UserRead)?;
    Ok(users::list(&core.db, filter, skip, limit.min(MAX_PAGE)).await?)
}

pub async fn get(core: &Core, caller: &Caller, id: i64) -> Result<User, ServiceError> {
    caller.require_self_or(id, Permission::UserRead)?;
    users::find(&core.db, id)
        .await?
        .ok_or(ServiceError::NotFound("User"))
}

/// Changes to one user. `None` leaves a field as it is; for nullable fields `Some(None)`
/// clears it.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub email: Option<Email>,
    pub username: Option<Option<Username>>,
    pub full_name: Option<Option<String>>,
    pub password: Option<Password>,
    /// Required when users change their own password.
    pub current_password: Option<SecretString>,
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
}

/// Updates user `id`. Users may change their own email, username, name and password (the
/// latter with their current password); changing flags, or anyone else, needs `user:write`,
/// and making or unmaking admins needs `admin:all`.
pub async fn update(
    core: &Core,
    caller: &Caller,
    id: i64,
    changes: UserChanges,
) -> Result<User, ServiceError> {
    let access = caller.require_self_or(id, Permission::UserWrite)?;
    let is_self = id == caller.id();
    if access == Access::Own && (changes.is_active.is_some() || changes.is_admin.is_some()) {
        return Err(ServiceError::Forbidden(
            "You cannot change your own is_active or is_admin".into(),
        ));
    }
    if changes.is_admin.is_some() {
        caller.require(Permission::AdminAll)?;
    }
    let user = users::find(&core.db, id)
        .await?
        .ok_or(ServiceError::NotFound("User"))?;
    if is_self && (changes.is_active == Some(false) || changes.is_admin == Some(false)) && user.is_admin {
        return Err(ServiceError::Forbidden(
            "Administrators cannot deactivate or demote themselves".into(),
        ));
    }

    if let Some(password) = &changes.password {
        check_password_against_identity(&changes, &user, password)?;
        if is_self {
            verify_current_password(core, &user, changes.current_password.as_ref()).await?;
        }
    }

    let removes_admin = user.is_admin
        && user.is_active
        && (changes.is_admin == Some(false) || changes.is_active == Some(false));
    let new_hash = match &changes.password {
        Some(p) => Some(core.hasher.hash(p.secret()).await?),
        None => None,
    };

    let txn = core.db.begin().await?;
    if removes_admin && users::count_active_admins(&txn).await? <= 1 {
        return Err(ServiceError::Conflict(
            "The last active administrator cannot be removed",
        ));
    }
    let mut row = users::edit(user);
    if let Some(email) = changes.email {
        row.email_lower = Set(email.normalized());
        row.email = Set(email.as_str().to_owned());
    }
    if let Some(username) = changes.username {
        row.username_lower = Set(username.as_ref().map(Username::normalized));
        row.username = Set(username.map(|u| u.as_str().to_owned()));
    }
    if let Some(full_name) = changes.full_name {
        row.full_name = Set(full_name);
    }
    if let Some(hash) = new_hash {
        row.password_hash = Set(hash);
    }
    if let Some(active) = changes.is_active {
        row.is_active = Set(active);
    }
    if let Some(admin) = changes.is_admin {
        row.is_admin = Set(admin);
    }
    let updated = users::update(&txn, row, core.clock.now()).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Deletes user `id` (self, or `user:delete`). Administrators cannot delete themselves, and the
/// last active administrator cannot be deleted at all.
pub async fn delete(core: &Core, caller: &Caller, id: i64) -> Result<(), ServiceError> {
    caller.require_self_or(id, Permission::UserDelete)?;
    let txn = core.db.begin().await?;
    let user = users::find(&txn, id)
        .await?
        .ok_or(ServiceError::NotFound("User"))?;
    if user.is_admin && id == caller.id() {
        return Err(ServiceError::Forbidden(
            "Administrators cannot delete themselves".into(),
        ));
    }
    if user.is_admin && user.is_active && users::count_active_admins(&txn).await? <= 1 {
        return Err(ServiceError::Conflict(
            "The last active administrator cannot be removed",
        ));
    }
    users::delete(&txn, id).await?;
    txn.commit().await?;
    tracing::info!(user_id = id, by = caller.id(), "user deleted");
    Ok(())
}

/// The new password may not equal the account's email or username, new or current.
fn check_password_against_identity(
    changes: &UserChanges,
    user: &User,
    password: &Password,
) -> Result<(), ServiceError> {
    let email = changes.email.as_ref().map_or(user.email.as_str(), Email::as_str);
    let username = match &changes.username {
        Some(u) => u.as_ref().map_or("", Username::as_str),
        None => user.username.as_deref().unwrap_or(""),
    };
    let lowered = password.secret().expose().to_lowercase();
    if lowered == email.to_lowercase() || (!username.is_empty() && lowered == username.to_lowercase()) {
        let mut errors = FieldErrors::new();
        errors.push(
            "password",
            FieldError::new(
                "Password must not be the same as the email or username",
                "value_error",
            ),
        );
        return Err(ServiceError::Validation(errors));
    }
    Ok(())
}

async fn verify_current_password(
    core: &Core,
    user: &User,
    current: Option<&SecretString>,
) -> Result<(), ServiceError> {
    let Some(current) = current else {
        let mut errors = FieldErrors::new();
        errors.push("current_password", FieldError::missing());
        return Err(ServiceError::Validation(errors));
    };
    if core
        .hasher
        .verify(current, Some(user.password_hash.clone()))
        .await?
    {
        Ok(())
    } else {
        Err(ServiceError::BadRequest("Current password is incorrect"))
    }
}
