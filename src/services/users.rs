//! Reading, changing and deleting users, under the policy's rules.

use std::sync::Arc;

use sea_orm::ActiveValue::Set;

use super::accounts::{self, NewAccount};
use super::policy::Access;
use super::{Caller, Core, Permission, ServiceError};
use crate::domain::{Email, FieldError, FieldErrors, Password, SecretString, Username};
use crate::store::entities::user::Model as User;
use crate::store::sessions;
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

pub async fn get(core: &Core, caller: &Caller, id: i64) -> Result<Arc<User>, ServiceError> {
    caller.require_self_or(id, Permission::UserRead)?;
    users::find_committed(&core.db, core.direct.as_ref(), id, caller.confirmed())
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
    /// Checked when users change their own password and `require_current_password` is set.
    pub current_password: Option<SecretString>,
    /// The native API asks users for their current password; the Flask-compatible API never did.
    pub require_current_password: bool,
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
    if is_self
        && (changes.is_active == Some(false) || changes.is_admin == Some(false))
        && caller.has(Permission::AdminAll)
    {
        return Err(ServiceError::Forbidden(
            "Administrators cannot deactivate or demote themselves".into(),
        ));
    }

    if let Some(password) = &changes.password {
        let email = changes.email.as_ref().map_or(user.email.as_str(), Email::as_str);
        let username = match &changes.username {
            Some(u) => u.as_ref().map_or("", Username::as_str),
            None => user.username.as_deref().unwrap_or(""),
        };
        if let Err(err) = password.differs_from(&[email, username]) {
            let mut errors = FieldErrors::new();
            errors.push("password", err);
            return Err(ServiceError::Validation(errors));
        }
        if is_self && changes.require_current_password {
            verify_current_password(core, &user, changes.current_password.as_ref()).await?;
        }
    }

    let new_hash = match &changes.password {
        Some(p) => Some(core.hasher.hash(p.secret()).await?),
        None => None,
    };

    // A new password ends every other session; deactivation ends all of them.
    let end_sessions = if changes.is_active == Some(false) {
        Some(None)
    } else if new_hash.is_some() {
        Some(if is_self {
            Some(caller.session_id.as_str())
        } else {
            None
        })
    } else {
        None
    };

    let now = core.clock.now();
    let txn = crate::store::begin(&core.db).await?;
    let admins_before = users::count_active_admins(&*txn).await?;
    if let Some(keep) = end_sessions {
        sessions::revoke_for_users(&*txn, &[id], keep, now).await?;
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
    let updated = users::update(&*txn, row, now).await?;
    ensure_an_admin_remains(&*txn, admins_before).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Refuses a change (the caller drops the transaction, rolling it back) that left no active
/// administrator where there was one.
pub(crate) async fn ensure_an_admin_remains(
    txn: &impl sea_orm::ConnectionTrait,
    before: u64,
) -> Result<(), ServiceError> {
    if before > 0 && users::count_active_admins(txn).await? == 0 {
        return Err(ServiceError::Conflict(
            "The last active administrator cannot be removed",
        ));
    }
    Ok(())
}

/// Creates a user with chosen flags (`user:write`; `is_admin` needs `admin:all`).
pub async fn create(
    core: &Core,
    caller: &Caller,
    account: NewAccount,
    is_active: bool,
    is_admin: bool,
) -> Result<User, ServiceError> {
    caller.require(Permission::UserWrite)?;
    if is_admin {
        caller.require(Permission::AdminAll)?;
    }
    accounts::create_user(core, account, is_active, is_admin).await
}

/// Activates or deactivates a user (`user:write`). Deactivation ends their sessions.
pub async fn set_active(core: &Core, caller: &Caller, id: i64, active: bool) -> Result<User, ServiceError> {
    caller.require(Permission::UserWrite)?;
    if !active && id == caller.id() {
        return Err(ServiceError::Forbidden("You cannot deactivate yourself".into()));
    }
    let changes = UserChanges {
        is_active: Some(active),
        ..UserChanges::default()
    };
    update(core, caller, id, changes).await
}

/// Grants or removes administrator rights (`admin:all`).
pub async fn set_admin(core: &Core, caller: &Caller, id: i64, admin: bool) -> Result<User, ServiceError> {
    caller.require(Permission::AdminAll)?;
    let changes = UserChanges {
        is_admin: Some(admin),
        ..UserChanges::default()
    };
    update(core, caller, id, changes).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    Activate,
    Deactivate,
    Delete,
}

/// What a bulk operation did.
#[derive(Debug, Default)]
pub struct BulkOutcome {
    /// How many users changed (or were deleted).
    pub changed: u64,
    /// Requested ids that do not exist.
    pub not_found: Vec<i64>,
}

/// The most ids one bulk request may name.
pub const MAX_BULK: usize = 1000;

/// Applies `action` to every existing user in `ids`, all in one transaction: either every
/// existing user changes or none does. Ids that do not exist are reported, not fatal.
pub async fn bulk(
    core: &Core,
    caller: &Caller,
    ids: &[i64],
    action: BulkAction,
) -> Result<BulkOutcome, ServiceError> {
    caller.require(match action {
        BulkAction::Delete => Permission::UserDelete,
        _ => Permission::UserWrite,
    })?;
    let mut ids: Vec<i64> = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if action != BulkAction::Activate && ids.contains(&caller.id()) {
        return Err(ServiceError::Forbidden(
            "You cannot deactivate or delete yourself in a bulk operation".into(),
        ));
    }
    let now = core.clock.now();
    let txn = crate::store::begin(&core.db).await?;
    let found = users::find_many(&*txn, &ids).await?;
    let existing: Vec<i64> = found.iter().map(|u| u.id).collect();
    let not_found: Vec<i64> = ids.iter().copied().filter(|id| !existing.contains(id)).collect();
    let admins_before = users::count_active_admins(&*txn).await?;
    let changed = match action {
        BulkAction::Activate => users::set_active_many(&*txn, &existing, true, now).await?,
        BulkAction::Deactivate => {
            sessions::revoke_for_users(&*txn, &existing, None, now).await?;
            users::set_active_many(&*txn, &existing, false, now).await?
        }
        BulkAction::Delete => users::delete_many(&*txn, &existing).await?,
    };
    ensure_an_admin_remains(&*txn, admins_before).await?;
    txn.commit().await?;
    tracing::info!(by = caller.id(), ?action, changed, "bulk user operation");
    Ok(BulkOutcome { changed, not_found })
}

/// Deletes user `id` (self, or `user:delete`). Administrators cannot delete themselves, and the
/// last active administrator cannot be deleted at all.
pub async fn delete(core: &Core, caller: &Caller, id: i64) -> Result<(), ServiceError> {
    caller.require_self_or(id, Permission::UserDelete)?;
    if id == caller.id() && caller.has(Permission::AdminAll) {
        return Err(ServiceError::Forbidden(
            "Administrators cannot delete themselves".into(),
        ));
    }
    let txn = crate::store::begin(&core.db).await?;
    let admins_before = users::count_active_admins(&*txn).await?;
    if !users::delete(&*txn, id).await? {
        return Err(ServiceError::NotFound("User"));
    }
    ensure_an_admin_remains(&*txn, admins_before).await?;
    txn.commit().await?;
    tracing::info!(user_id = id, by = caller.id(), "user deleted");
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
