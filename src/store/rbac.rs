//! Queries on roles, permissions and their assignments.

use std::collections::BTreeMap;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, RelationTrait,
};

use super::entities::permission::{self, Entity as Permissions, Model as Permission};
use super::entities::role::{self, Entity as Roles, Model as Role};
use super::entities::role_permission::{self, Entity as RolePermissions};
use super::entities::user_role::{self, Entity as UserRoles};
use crate::domain::rbac::{BUILTIN_PERMISSIONS, BUILTIN_ROLES};

/// Creates whatever part of the built-in catalogue is missing; changes nothing that exists.
/// Used by the RBAC migration and by `users-api seed-rbac`.
pub async fn seed_catalogue(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    for (name, resource, action, description) in BUILTIN_PERMISSIONS {
        if permission_by_name(db, name).await?.is_none() {
            permission::ActiveModel {
                name: Set((*name).to_owned()),
                resource: Set((*resource).to_owned()),
                action: Set((*action).to_owned()),
                description: Set(Some((*description).to_owned())),
                ..Default::default()
            }
            .insert(db)
            .await?;
        }
    }
    for (name, description, is_default, permissions) in BUILTIN_ROLES {
        let role = match role_by_name(db, name).await? {
            Some(role) => role,
            None => {
                role::ActiveModel {
                    name: Set((*name).to_owned()),
                    description: Set(Some((*description).to_owned())),
                    is_default: Set(*is_default),
                    ..Default::default()
                }
                .insert(db)
                .await?
            }
        };
        let have: Vec<i64> = permissions_of_roles(db, &[role.id])
            .await?
            .into_values()
            .flatten()
            .map(|p| p.id)
            .collect();
        for permission in *permissions {
            if let Some(p) = permission_by_name(db, permission).await?
                && !have.contains(&p.id)
            {
                role_permission::ActiveModel {
                    role_id: Set(role.id),
                    permission_id: Set(p.id),
                }
                .insert(db)
                .await?;
            }
        }
    }
    Ok(())
}

/// Gives every user with an id above `after` every default role, in one statement: all users
/// (`after` = 0) when RBAC arrives, the newly imported ones after an import.
pub async fn grant_default_roles_after(db: &impl ConnectionTrait, after: i64) -> Result<(), DbErr> {
    let select = Query::select()
        .column((Alias::new("users"), Alias::new("id")))
        .column((Alias::new("roles"), Alias::new("id")))
        .from(Alias::new("users"))
        .from(Alias::new("roles"))
        .and_where(Expr::col((Alias::new("roles"), Alias::new("is_default"))).eq(true))
        .and_where(Expr::col((Alias::new("users"), Alias::new("id"))).gt(after))
        .to_owned();
    let insert = Query::insert()
        .into_table(Alias::new("user_roles"))
        .columns([Alias::new("user_id"), Alias::new("role_id")])
        .select_from(select)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .to_owned();
    db.execute(&insert).await.map(|_| ())
}

/// Gives one (new) user every default role, in one `INSERT … SELECT` statement.
pub async fn grant_default_roles(db: &impl ConnectionTrait, user_id: i64) -> Result<(), DbErr> {
    let select = Query::select()
        .expr(Expr::val(user_id))
        .column(role::Column::Id)
        .from(Roles)
        .and_where(Expr::col(role::Column::IsDefault).eq(true))
        .to_owned();
    let insert = Query::insert()
        .into_table(UserRoles)
        .columns([user_role::Column::UserId, user_role::Column::RoleId])
        .select_from(select)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .to_owned();
    db.execute(&insert).await.map(|_| ())
}

/// A user's role names and effective `resource:action` permissions, in one query.
pub async fn resolve(db: &impl ConnectionTrait, user_id: i64) -> Result<(Vec<String>, Vec<String>), DbErr> {
    let rows = UserRoles::find()
        .select_only()
        .column_as(role::Column::Name, "role")
        .column_as(permission::Column::Resource, "resource")
        .column_as(permission::Column::Action, "action")
        .inner_join(Roles)
        .join(sea_orm::JoinType::LeftJoin, role::Relation::RolePermission.def())
        .join(
            sea_orm::JoinType::LeftJoin,
            role_permission::Relation::Permission.def(),
        )
        .filter(user_role::Column::UserId.eq(user_id))
        .into_tuple::<(String, Option<String>, Option<String>)>()
        .all(db)
        .await?;
    Ok(fold_grants(rows))
}

/// Role names and `resource:action` permission names, each sorted and without duplicates, from
/// (role, resource, action) rows of a join over a user's roles and their permissions.
pub(crate) fn fold_grants(
    rows: impl IntoIterator<Item = (String, Option<String>, Option<String>)>,
) -> (Vec<String>, Vec<String>) {
    let mut roles = Vec::new();
    let mut permissions = Vec::new();
    for (role, resource, action) in rows {
        if let (Some(resource), Some(action)) = (resource, action) {
            permissions.push(format!("{resource}:{action}"));
        }
        roles.push(role);
    }
    roles.sort_unstable();
    roles.dedup();
    permissions.sort_unstable();
    permissions.dedup();
    (roles, permissions)
}

pub async fn permission_by_name(db: &impl ConnectionTrait, name: &str) -> Result<Option<Permission>, DbErr> {
    Permissions::find()
        .filter(permission::Column::Name.eq(name))
        .one(db)
        .await
}

pub async fn role_by_name(db: &impl ConnectionTrait, name: &str) -> Result<Option<Role>, DbErr> {
    Roles::find().filter(role::Column::Name.eq(name)).one(db).await
}

pub async fn find_permission(db: &impl ConnectionTrait, id: i64) -> Result<Option<Permission>, DbErr> {
    Permissions::find_by_id(id).one(db).await
}

pub async fn find_role(db: &impl ConnectionTrait, id: i64) -> Result<Option<Role>, DbErr> {
    Roles::find_by_id(id).one(db).await
}

pub async fn list_permissions(
    db: &impl ConnectionTrait,
    skip: u64,
    limit: u64,
) -> Result<(Vec<Permission>, u64), DbErr> {
    let total = Permissions::find().count(db).await?;
    let rows = Permissions::find()
        .order_by_asc(permission::Column::Id)
        .offset(skip)
        .limit(limit)
        .all(db)
        .await?;
    Ok((rows, total))
}

pub async fn list_roles(db: &impl ConnectionTrait, skip: u64, limit: u64) -> Result<(Vec<Role>, u64), DbErr> {
    let total = Roles::find().count(db).await?;
    let rows = Roles::find()
        .order_by_asc(role::Column::Id)
        .offset(skip)
        .limit(limit)
        .all(db)
        .await?;
    Ok((rows, total))
}

/// The permissions of each of `role_ids`, in one query.
pub async fn permissions_of_roles(
    db: &impl ConnectionTrait,
    role_ids: &[i64],
) -> Result<BTreeMap<i64, Vec<Permission>>, DbErr> {
    let mut out: BTreeMap<i64, Vec<Permission>> = role_ids.iter().map(|id| (*id, Vec::new())).collect();
    if role_ids.is_empty() {
        return Ok(out);
    }
    let rows = RolePermissions::find()
        .filter(role_permission::Column::RoleId.is_in(role_ids.iter().copied()))
        .find_also_related(Permissions)
        .order_by_asc(role_permission::Column::PermissionId)
        .all(db)
        .await?;
    for (link, permission) in rows {
        if let Some(p) = permission {
            out.entry(link.role_id).or_default().push(p);
        }
    }
    Ok(out)
}

/// The roles of each of `user_ids`, in one query.
pub async fn roles_of_users(
    db: &impl ConnectionTrait,
    user_ids: &[i64],
) -> Result<BTreeMap<i64, Vec<Role>>, DbErr> {
    let mut out: BTreeMap<i64, Vec<Role>> = user_ids.iter().map(|id| (*id, Vec::new())).collect();
    if user_ids.is_empty() {
        return Ok(out);
    }
    let rows = UserRoles::find()
        .filter(user_role::Column::UserId.is_in(user_ids.iter().copied()))
        .find_also_related(Roles)
        .order_by_asc(user_role::Column::RoleId)
        .all(db)
        .await?;
    for (link, role) in rows {
        if let Some(r) = role {
            out.entry(link.user_id).or_default().push(r);
        }
    }
    Ok(out)
}

/// Which of `ids` exist in `permissions`.
pub async fn existing_permission_ids(db: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<i64>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(Permissions::find()
        .filter(permission::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect())
}

/// Which of `ids` exist in `roles`.
pub async fn existing_role_ids(db: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<i64>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(Roles::find()
        .filter(role::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect())
}

/// Replaces a role's permissions with `permission_ids` (which must exist).
pub async fn set_role_permissions(
    db: &impl ConnectionTrait,
    role_id: i64,
    permission_ids: &[i64],
) -> Result<(), DbErr> {
    RolePermissions::delete_many()
        .filter(role_permission::Column::RoleId.eq(role_id))
        .exec(db)
        .await?;
    if permission_ids.is_empty() {
        return Ok(());
    }
    RolePermissions::insert_many(permission_ids.iter().map(|p| role_permission::ActiveModel {
        role_id: Set(role_id),
        permission_id: Set(*p),
    }))
    .exec(db)
    .await
    .map(|_| ())
}

/// Adds roles to a user; roles the user already has are left alone.
pub async fn add_user_roles(db: &impl ConnectionTrait, user_id: i64, role_ids: &[i64]) -> Result<(), DbErr> {
    let have: Vec<i64> = roles_of_users(db, &[user_id])
        .await?
        .into_values()
        .flatten()
        .map(|r| r.id)
        .collect();
    let new: Vec<user_role::ActiveModel> = role_ids
        .iter()
        .filter(|id| !have.contains(id))
        .map(|id| user_role::ActiveModel {
            user_id: Set(user_id),
            role_id: Set(*id),
        })
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    UserRoles::insert_many(new).exec(db).await.map(|_| ())
}

/// Removes one role from a user; `false` when the user did not have it.
pub async fn remove_user_role(db: &impl ConnectionTrait, user_id: i64, role_id: i64) -> Result<bool, DbErr> {
    let result = UserRoles::delete_many()
        .filter(user_role::Column::UserId.eq(user_id))
        .filter(user_role::Column::RoleId.eq(role_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

pub async fn delete_role(db: &impl ConnectionTrait, id: i64) -> Result<bool, DbErr> {
    Ok(Roles::delete_by_id(id).exec(db).await?.rows_affected > 0)
}

pub async fn delete_permission(db: &impl ConnectionTrait, id: i64) -> Result<bool, DbErr> {
    Ok(Permissions::delete_by_id(id).exec(db).await?.rows_affected > 0)
}
