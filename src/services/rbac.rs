//! Managing roles, permissions and who holds which role. Every change here takes effect on the
//! next request of every affected user, on every replica: permissions are resolved from the
//! database per request.

use sea_orm::{ActiveModelTrait, ActiveValue::Set};

use super::users::ensure_an_admin_remains;
use super::{Caller, Core, Permission, ServiceError};
use crate::domain::rbac::{ADMIN_PERMISSION, ADMIN_ROLE};
use crate::store::entities::permission::{self, Model as PermissionRow};
use crate::store::entities::role::{self, Model as RoleRow};
use crate::store::entities::user::Model as User;
use crate::store::{rbac, users};

/// A role with its permissions.
#[derive(Debug, Clone)]
pub struct RoleWithPermissions {
    pub role: RoleRow,
    pub permissions: Vec<PermissionRow>,
}

#[derive(Debug)]
pub struct NewPermission {
    pub name: String,
    pub description: Option<String>,
    pub resource: String,
    pub action: String,
}

#[derive(Debug, Default)]
pub struct PermissionChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub resource: Option<String>,
    pub action: Option<String>,
}

#[derive(Debug, Default)]
pub struct RoleChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_default: Option<bool>,
    /// Replaces the role's permissions.
    pub permission_ids: Option<Vec<i64>>,
}

fn built_in_admin_permission(p: &PermissionRow) -> bool {
    p.name == ADMIN_PERMISSION
}

async fn require_permissions_exist(core: &Core, ids: &[i64]) -> Result<Vec<i64>, ServiceError> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let existing = rbac::existing_permission_ids(&core.db, &ids).await?;
    match ids.iter().find(|id| !existing.contains(id)) {
        Some(missing) => Err(ServiceError::NotFoundId("Permission", *missing)),
        None => Ok(ids),
    }
}

async fn with_permissions(
    core: &Core,
    roles: Vec<RoleRow>,
) -> Result<Vec<RoleWithPermissions>, ServiceError> {
    let ids: Vec<i64> = roles.iter().map(|r| r.id).collect();
    let mut permissions = rbac::permissions_of_roles(&core.db, &ids).await?;
    Ok(roles
        .into_iter()
        .map(|role| RoleWithPermissions {
            permissions: permissions.remove(&role.id).unwrap_or_default(),
            role,
        })
        .collect())
}

// ---- permissions -------------------------------------------------------------------------

pub async fn create_permission(
    core: &Core,
    caller: &Caller,
    new: NewPermission,
) -> Result<PermissionRow, ServiceError> {
    caller.require(Permission::RbacWrite)?;
    let row = permission::ActiveModel {
        name: Set(new.name),
        description: Set(new.description),
        resource: Set(new.resource),
        action: Set(new.action),
        ..Default::default()
    }
    .insert(&core.db)
    .await
    .map_err(|e| ServiceError::from(e).named("permission"))?;
    Ok(row)
}

pub async fn list_permissions(
    core: &Core,
    caller: &Caller,
    skip: u64,
    limit: u64,
) -> Result<(Vec<PermissionRow>, u64), ServiceError> {
    caller.require(Permission::RbacRead)?;
    Ok(rbac::list_permissions(&core.db, skip, limit).await?)
}

pub async fn get_permission(core: &Core, caller: &Caller, id: i64) -> Result<PermissionRow, ServiceError> {
    caller.require(Permission::RbacRead)?;
    rbac::find_permission(&core.db, id)
        .await?
        .ok_or(ServiceError::NotFound("Permission"))
}

pub async fn update_permission(
    core: &Core,
    caller: &Caller,
    id: i64,
    changes: PermissionChanges,
) -> Result<PermissionRow, ServiceError> {
    caller.require(Permission::RbacWrite)?;
    let current = rbac::find_permission(&core.db, id)
        .await?
        .ok_or(ServiceError::NotFound("Permission"))?;
    let touches_identity = changes.name.is_some() || changes.resource.is_some() || changes.action.is_some();
    if built_in_admin_permission(&current) && touches_identity {
        return Err(ServiceError::Conflict(
            "The built-in admin:all permission cannot be renamed or changed",
        ));
    }
    let txn = crate::store::begin(&core.db).await?;
    let admins_before = users::count_active_admins(&*txn).await?;
    let mut row: permission::ActiveModel = current.into();
    if let Some(v) = changes.name {
        row.name = Set(v);
    }
    if let Some(v) = changes.description {
        row.description = Set(v);
    }
    if let Some(v) = changes.resource {
        row.resource = Set(v);
    }
    if let Some(v) = changes.action {
        row.action = Set(v);
    }
    let updated = row
        .update(&*txn)
        .await
        .map_err(|e| ServiceError::from(e).named("permission"))?;
    ensure_an_admin_remains(&*txn, admins_before).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Deletes a permission; roles lose it. The built-in `admin:all` cannot be deleted.
pub async fn delete_permission(core: &Core, caller: &Caller, id: i64) -> Result<(), ServiceError> {
    caller.require(Permission::RbacWrite)?;
    let current = rbac::find_permission(&core.db, id)
        .await?
        .ok_or(ServiceError::NotFound("Permission"))?;
    if built_in_admin_permission(&current) {
        return Err(ServiceError::Conflict(
            "The built-in admin:all permission cannot be deleted",
        ));
    }
    let txn = crate::store::begin(&core.db).await?;
    let admins_before = users::count_active_admins(&*txn).await?;
    rbac::delete_permission(&*txn, id).await?;
    ensure_an_admin_remains(&*txn, admins_before).await?;
    txn.commit().await?;
    Ok(())
}

// ---- roles -------------------------------------------------------------------------------

pub async fn create_role(
    core: &Core,
    caller: &Caller,
    name: String,
    description: Option<String>,
    is_default: bool,
    permission_ids: &[i64],
) -> Result<RoleWithPermissions, ServiceError> {
    caller.require(Permission::RbacWrite)?;
    let ids = require_permissions_exist(core, permission_ids).await?;
    let txn = crate::store::begin(&core.db).await?;
    let role = role::ActiveModel {
        name: Set(name),
        description: Set(description),
        is_default: Set(is_default),
        ..Default::default()
    }
    .insert(&*txn)
    .await
    .map_err(|e| ServiceError::from(e).named("role"))?;
    rbac::set_role_permissions(&*txn, role.id, &ids).await?;
    txn.commit().await?;
    get_role_unchecked(core, role.id).await
}

pub async fn list_roles(
    core: &Core,
    caller: &Caller,
    skip: u64,
    limit: u64,
) -> Result<(Vec<RoleWithPermissions>, u64), ServiceError> {
    caller.require(Permission::RbacRead)?;
    let (roles, total) = rbac::list_roles(&core.db, skip, limit).await?;
    Ok((with_permissions(core, roles).await?, total))
}

pub async fn get_role(core: &Core, caller: &Caller, id: i64) -> Result<RoleWithPermissions, ServiceError> {
    caller.require(Permission::RbacRead)?;
    get_role_unchecked(core, id).await
}

async fn get_role_unchecked(core: &Core, id: i64) -> Result<RoleWithPermissions, ServiceError> {
    let role = rbac::find_role(&core.db, id)
        .await?
        .ok_or(ServiceError::NotFound("Role"))?;
    Ok(with_permissions(core, vec![role]).await?.remove(0))
}

pub async fn update_role(
    core: &Core,
    caller: &Caller,
    id: i64,
    changes: RoleChanges,
) -> Result<RoleWithPermissions, ServiceError> {
    caller.require(Permission::RbacWrite)?;
    let current = get_role_unchecked(core, id).await?;
    let ids = match &changes.permission_ids {
        Some(ids) => Some(require_permissions_exist(core, ids).await?),
        None => None,
    };
    if current.role.name == ADMIN_ROLE {
        let renames = changes.name.as_deref().is_some_and(|n| n != ADMIN_ROLE);
        let admin_id = current
            .permissions
            .iter()
            .find(|p| built_in_admin_permission(p))
            .map(|p| p.id);
        let drops_admin = ids
            .as_ref()
            .is_some_and(|ids| admin_id.is_some_and(|a| !ids.contains(&a)));
        if renames || drops_admin {
            return Err(ServiceError::Conflict(
                "The built-in admin role cannot be renamed or lose admin:all",
            ));
        }
    }
    let txn = crate::store::begin(&core.db).await?;
    let admins_before = users::count_active_admins(&*txn).await?;
    let mut row: role::ActiveModel = current.role.into();
    if let Some(v) = changes.name {
        row.name = Set(v);
    }
    if let Some(v) = changes.description {
        row.description = Set(v);
    }
    if let Some(v) = changes.is_default {
        row.is_default = Set(v);
    }
    row.update(&*txn)
        .await
        .map_err(|e| ServiceError::from(e).named("role"))?;
    if let Some(ids) = ids {
        rbac::set_role_permissions(&*txn, id, &ids).await?;
    }
    ensure_an_admin_remains(&*txn, admins_before).await?;
    txn.commit().await?;
    get_role_unchecked(core, id).await
}

/// Deletes a role; users holding it lose it. The built-in `admin` role cannot be deleted.
pub async fn delete_role(core: &Core, caller: &Caller, id: i64) -> Result<(), ServiceError> {
    caller.require(Permission::RbacWrite)?;
    let current = rbac::find_role(&core.db, id)
        .await?
        .ok_or(ServiceError::NotFound("Role"))?;
    if current.name == ADMIN_ROLE {
        return Err(ServiceError::Conflict(
            "The built-in admin role cannot be deleted",
        ));
    }
    let txn = crate::store::begin(&core.db).await?;
    let admins_before = users::count_active_admins(&*txn).await?;
    rbac::delete_role(&*txn, id).await?;
    ensure_an_admin_remains(&*txn, admins_before).await?;
    txn.commit().await?;
    Ok(())
}

// ---- assignments -------------------------------------------------------------------------

/// The roles of a user (`rbac:read`, or the user themself).
pub async fn user_roles(
    core: &Core,
    caller: &Caller,
    user_id: i64,
) -> Result<Vec<RoleWithPermissions>, ServiceError> {
    caller.require_self_or(user_id, Permission::RbacRead)?;
    users::find(&core.db, user_id)
        .await?
        .ok_or(ServiceError::NotFound("User"))?;
    let roles = rbac::roles_of_users(&core.db, &[user_id])
        .await?
        .remove(&user_id)
        .unwrap_or_default();
    with_permissions(core, roles).await
}

/// Gives a user more roles (`rbac:write`); roles they hold already are kept.
pub async fn assign_roles(
    core: &Core,
    caller: &Caller,
    user_id: i64,
    role_ids: &[i64],
) -> Result<Vec<RoleWithPermissions>, ServiceError> {
    caller.require(Permission::RbacWrite)?;
    users::find(&core.db, user_id)
        .await?
        .ok_or(ServiceError::NotFound("User"))?;
    let mut ids = role_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let existing = rbac::existing_role_ids(&core.db, &ids).await?;
    if let Some(missing) = ids.iter().find(|id| !existing.contains(id)) {
        return Err(ServiceError::NotFoundId("Role", *missing));
    }
    rbac::add_user_roles(&core.db, user_id, &ids).await?;
    let roles = rbac::roles_of_users(&core.db, &[user_id])
        .await?
        .remove(&user_id)
        .unwrap_or_default();
    with_permissions(core, roles).await
}

/// Takes a role from a user (`rbac:write`), never leaving the service without an admin.
pub async fn remove_role(
    core: &Core,
    caller: &Caller,
    user_id: i64,
    role_id: i64,
) -> Result<(), ServiceError> {
    caller.require(Permission::RbacWrite)?;
    let txn = crate::store::begin(&core.db).await?;
    let admins_before = users::count_active_admins(&*txn).await?;
    if !rbac::remove_user_role(&*txn, user_id, role_id).await? {
        return Err(ServiceError::NotFound("Role assignment"));
    }
    ensure_an_admin_remains(&*txn, admins_before).await?;
    txn.commit().await?;
    Ok(())
}

/// Users with their roles (`rbac:read`), a page at a time.
pub async fn users_with_roles(
    core: &Core,
    caller: &Caller,
    skip: u64,
    limit: u64,
) -> Result<(Vec<(User, Vec<RoleWithPermissions>)>, u64), ServiceError> {
    caller.require(Permission::RbacRead)?;
    let (page, total) = users::list(&core.db, &users::ListFilter::default(), skip, limit).await?;
    let ids: Vec<i64> = page.iter().map(|u| u.id).collect();
    let mut roles = rbac::roles_of_users(&core.db, &ids).await?;
    let all_roles: Vec<RoleRow> = roles.values().flatten().cloned().collect();
    let detailed = with_permissions(core, all_roles).await?;
    let out = page
        .into_iter()
        .map(|user| {
            let held = roles.remove(&user.id).unwrap_or_default();
            let held = held
                .iter()
                .filter_map(|r| detailed.iter().find(|d| d.role.id == r.id).cloned())
                .collect();
            (user, held)
        })
        .collect();
    Ok((out, total))
}

/// Whether the caller holds `resource:action` (any authenticated user may ask about themself).
pub fn check(caller: &Caller, resource: &str, action: &str) -> bool {
    caller.has_named(&format!("{resource}:{action}"))
}
