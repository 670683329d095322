//! `/rbac/…`: permissions, roles, assignments and permission checks.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};

use super::parse;
use super::schemas::{
    AssignRolesRequest, CheckPermissionOut, CheckPermissionRequest, CreatePermissionRequest,
    CreateRoleRequest, MyPermissionsOut, PageQuery, PermissionOut, RoleOut, UpdatePermissionRequest,
    UpdateRoleRequest, UserWithRolesOut,
};
use crate::domain::rbac::{parse_name, parse_part};
use crate::domain::{FieldError, FieldErrors};
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody, ValidationBody};
use crate::http::extract::{AuthUser, JsonBody, Path, Query};
use crate::services::rbac::{self, NewPermission, PermissionChanges, RoleChanges};

fn total(total: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(total));
    headers
}

/// Create a permission (`rbac:write`).
#[utoipa::path(
    post, path = "/rbac/permissions", tag = "rbac", request_body = CreatePermissionRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = PermissionOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ValidationBody),
    )
)]
pub async fn create_permission(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    JsonBody(req): JsonBody<CreatePermissionRequest>,
) -> Result<(StatusCode, Json<PermissionOut>), ApiError> {
    let mut errors = FieldErrors::new();
    let name = errors
        .required("name", req.name)
        .and_then(|v| errors.check("name", parse_name(&v, 100)));
    let resource = errors
        .required("resource", req.resource)
        .and_then(|v| errors.check("resource", parse_part(&v)));
    let action = errors
        .required("action", req.action)
        .and_then(|v| errors.check("action", parse_part(&v)));
    let description = req
        .description
        .and_then(|d| errors.check("description", parse::description(&d)).flatten());
    let (Some(name), Some(resource), Some(action)) = (name, resource, action) else {
        return Err(ApiError::body(errors));
    };
    errors.finish().map_err(ApiError::body)?;
    let new = NewPermission {
        name,
        description,
        resource,
        action,
    };
    let created = rbac::create_permission(&state.core, &caller, new).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// List permissions (`rbac:read`); total in `X-Total-Count`.
#[utoipa::path(
    get, path = "/rbac/permissions", tag = "rbac", params(PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<PermissionOut>, headers(("X-Total-Count" = u64, description = "All permissions"))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ValidationBody),
    )
)]
pub async fn list_permissions(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Query(page): Query<PageQuery>,
) -> Result<(HeaderMap, Json<Vec<PermissionOut>>), ApiError> {
    let (skip, limit) = parse::page(page.skip, page.limit)?;
    let (rows, count) = rbac::list_permissions(&state.core, &caller, skip, limit).await?;
    Ok((
        total(count),
        Json(rows.into_iter().map(PermissionOut::from).collect()),
    ))
}

/// One permission (`rbac:read`).
#[utoipa::path(
    get, path = "/rbac/permissions/{id}", tag = "rbac", params(("id" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = PermissionOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ValidationBody),
    )
)]
pub async fn get_permission(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<PermissionOut>, ApiError> {
    Ok(Json(rbac::get_permission(&state.core, &caller, id).await?.into()))
}

/// Change a permission (`rbac:write`). The built-in `admin:all` keeps its name, resource and action.
#[utoipa::path(
    put, path = "/rbac/permissions/{id}", tag = "rbac", params(("id" = i64, Path)),
    request_body = UpdatePermissionRequest, security(("bearer" = [])),
    responses(
        (status = 200, body = PermissionOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ValidationBody),
    )
)]
pub async fn update_permission(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<UpdatePermissionRequest>,
) -> Result<Json<PermissionOut>, ApiError> {
    let mut errors = FieldErrors::new();
    let changes = PermissionChanges {
        name: req.name.and_then(|v| errors.check("name", parse_name(&v, 100))),
        resource: req
            .resource
            .and_then(|v| errors.check("resource", parse_part(&v))),
        action: req.action.and_then(|v| errors.check("action", parse_part(&v))),
        description: req
            .description
            .map(|d| d.and_then(|d| errors.check("description", parse::description(&d)).flatten())),
    };
    errors.finish().map_err(ApiError::body)?;
    Ok(Json(
        rbac::update_permission(&state.core, &caller, id, changes)
            .await?
            .into(),
    ))
}

/// Delete a permission (`rbac:write`); roles lose it. `admin:all` cannot be deleted.
#[utoipa::path(
    delete, path = "/rbac/permissions/{id}", tag = "rbac", params(("id" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ValidationBody),
    )
)]
pub async fn delete_permission(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    rbac::delete_permission(&state.core, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create a role with permissions (`rbac:write`).
#[utoipa::path(
    post, path = "/rbac/roles", tag = "rbac", request_body = CreateRoleRequest, security(("bearer" = [])),
    responses(
        (status = 201, body = RoleOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "Unknown permission id", body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn create_role(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    JsonBody(req): JsonBody<CreateRoleRequest>,
) -> Result<(StatusCode, Json<RoleOut>), ApiError> {
    let mut errors = FieldErrors::new();
    let name = errors
        .required("name", req.name)
        .and_then(|v| errors.check("name", parse_name(&v, 50)));
    let description = req
        .description
        .and_then(|d| errors.check("description", parse::description(&d)).flatten());
    let ids = req.permission_ids.unwrap_or_default();
    if ids.len() > 1000 {
        errors.push("permission_ids", FieldError::new("At most 1000 ids", "too_long"));
    }
    let Some(name) = name else {
        return Err(ApiError::body(errors));
    };
    errors.finish().map_err(ApiError::body)?;
    let role = rbac::create_role(
        &state.core,
        &caller,
        name,
        description,
        req.is_default.unwrap_or(false),
        &ids,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(role.into())))
}

/// List roles with their permissions (`rbac:read`); total in `X-Total-Count`.
#[utoipa::path(
    get, path = "/rbac/roles", tag = "rbac", params(PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<RoleOut>, headers(("X-Total-Count" = u64, description = "All roles"))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ValidationBody),
    )
)]
pub async fn list_roles(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Query(page): Query<PageQuery>,
) -> Result<(HeaderMap, Json<Vec<RoleOut>>), ApiError> {
    let (skip, limit) = parse::page(page.skip, page.limit)?;
    let (roles, count) = rbac::list_roles(&state.core, &caller, skip, limit).await?;
    Ok((total(count), Json(roles.into_iter().map(RoleOut::from).collect())))
}

/// One role with its permissions (`rbac:read`).
#[utoipa::path(
    get, path = "/rbac/roles/{id}", tag = "rbac", params(("id" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = RoleOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ValidationBody),
    )
)]
pub async fn get_role(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<RoleOut>, ApiError> {
    Ok(Json(rbac::get_role(&state.core, &caller, id).await?.into()))
}

/// Change a role; `permission_ids` replaces its permissions (`rbac:write`).
#[utoipa::path(
    put, path = "/rbac/roles/{id}", tag = "rbac", params(("id" = i64, Path)), request_body = UpdateRoleRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = RoleOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ValidationBody),
    )
)]
pub async fn update_role(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<UpdateRoleRequest>,
) -> Result<Json<RoleOut>, ApiError> {
    let mut errors = FieldErrors::new();
    let changes = RoleChanges {
        name: req.name.and_then(|v| errors.check("name", parse_name(&v, 50))),
        description: req
            .description
            .map(|d| d.and_then(|d| errors.check("description", parse::description(&d)).flatten())),
        is_default: req.is_default,
        permission_ids: req.permission_ids,
    };
    if changes
        .permission_ids
        .as_ref()
        .is_some_and(|ids| ids.len() > 1000)
    {
        errors.push("permission_ids", FieldError::new("At most 1000 ids", "too_long"));
    }
    errors.finish().map_err(ApiError::body)?;
    Ok(Json(
        rbac::update_role(&state.core, &caller, id, changes).await?.into(),
    ))
}

/// Delete a role (`rbac:write`); users holding it lose it. The `admin` role cannot be deleted.
#[utoipa::path(
    delete, path = "/rbac/roles/{id}", tag = "rbac", params(("id" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ValidationBody),
    )
)]
pub async fn delete_role(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    rbac::delete_role(&state.core, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give a user roles (`rbac:write`); answers all the user's roles.
#[utoipa::path(
    post, path = "/rbac/users/{user_id}/roles", tag = "rbac", params(("user_id" = i64, Path)),
    request_body = AssignRolesRequest, security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<RoleOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "Unknown user or role", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ValidationBody),
    )
)]
pub async fn assign_roles(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(user_id): Path<i64>,
    JsonBody(req): JsonBody<AssignRolesRequest>,
) -> Result<Json<Vec<RoleOut>>, ApiError> {
    let mut errors = FieldErrors::new();
    if req.user_id.is_some_and(|id| id != user_id) {
        errors.push(
            "user_id",
            FieldError::new("Must match the user id in the path", "value_error"),
        );
    }
    let ids = errors.required("role_ids", req.role_ids);
    if ids.as_ref().is_some_and(|ids| ids.len() > 1000) {
        errors.push("role_ids", FieldError::new("At most 1000 ids", "too_long"));
    }
    let Some(ids) = ids else {
        return Err(ApiError::body(errors));
    };
    errors.finish().map_err(ApiError::body)?;
    let roles = rbac::assign_roles(&state.core, &caller, user_id, &ids).await?;
    Ok(Json(roles.into_iter().map(RoleOut::from).collect()))
}

/// A user's roles (`rbac:read`, or yourself).
#[utoipa::path(
    get, path = "/rbac/users/{user_id}/roles", tag = "rbac", params(("user_id" = i64, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<RoleOut>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ValidationBody),
    )
)]
pub async fn user_roles(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(user_id): Path<i64>,
) -> Result<Json<Vec<RoleOut>>, ApiError> {
    let roles = rbac::user_roles(&state.core, &caller, user_id).await?;
    Ok(Json(roles.into_iter().map(RoleOut::from).collect()))
}

/// Take a role from a user (`rbac:write`).
#[utoipa::path(
    delete, path = "/rbac/users/{user_id}/roles/{role_id}", tag = "rbac",
    params(("user_id" = i64, Path), ("role_id" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "The user does not hold that role", body = ErrorBody),
        (status = 409, description = "Would leave no administrator", body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn remove_user_role(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path((user_id, role_id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    rbac::remove_role(&state.core, &caller, user_id, role_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Users with their roles (`rbac:read`); total in `X-Total-Count`.
#[utoipa::path(
    get, path = "/rbac/users", tag = "rbac", params(PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<UserWithRolesOut>, headers(("X-Total-Count" = u64, description = "All users"))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ValidationBody),
    )
)]
pub async fn users_with_roles(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Query(page): Query<PageQuery>,
) -> Result<(HeaderMap, Json<Vec<UserWithRolesOut>>), ApiError> {
    let (skip, limit) = parse::page(page.skip, page.limit)?;
    let (rows, count) = rbac::users_with_roles(&state.core, &caller, skip, limit).await?;
    let out = rows
        .into_iter()
        .map(|(user, roles)| UserWithRolesOut {
            user: user.into(),
            roles: roles.into_iter().map(RoleOut::from).collect(),
        })
        .collect();
    Ok((total(count), Json(out)))
}

/// Whether you hold `resource:action`.
#[utoipa::path(
    post, path = "/rbac/check-permission", tag = "rbac", request_body = CheckPermissionRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = CheckPermissionOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ValidationBody),
    )
)]
pub async fn check_permission(
    AuthUser(caller): AuthUser,
    JsonBody(req): JsonBody<CheckPermissionRequest>,
) -> Result<Json<CheckPermissionOut>, ApiError> {
    let mut errors = FieldErrors::new();
    let resource = errors
        .required("resource", req.resource)
        .and_then(|v| errors.check("resource", parse_part(&v)));
    let action = errors
        .required("action", req.action)
        .and_then(|v| errors.check("action", parse_part(&v)));
    let (Some(resource), Some(action)) = (resource, action) else {
        return Err(ApiError::body(errors));
    };
    let allowed = rbac::check(&caller, &resource, &action);
    Ok(Json(CheckPermissionOut {
        resource,
        action,
        allowed,
    }))
}

/// Your roles and effective permissions.
#[utoipa::path(
    get, path = "/rbac/my-permissions", tag = "rbac", security(("bearer" = [])),
    responses((status = 200, body = MyPermissionsOut), (status = 401, body = ErrorBody))
)]
pub async fn my_permissions(AuthUser(caller): AuthUser) -> Json<MyPermissionsOut> {
    Json(MyPermissionsOut {
        permissions: caller.permissions(),
        roles: caller.roles().to_vec(),
    })
}
