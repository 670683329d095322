use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};

use super::parse;
use super::schemas::{
    BulkDeletedOut, BulkRequest, BulkUpdatedOut, CreateUserRequest, ListUsersQuery, UpdateMeRequest,
    UpdateUserRequest, UserOut,
};
use crate::domain::{FieldError, FieldErrors, no_control_characters};
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody, ValidationBody};
use crate::http::extract::{AuthUser, JsonBody, Path, Query};
use crate::services::Caller;
use crate::services::users::{self, BulkAction};
use crate::store::users::{ListFilter, SortKey};

/// List users (`user:read`). The total number of matches is in `X-Total-Count`.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    params(ListUsersQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<UserOut>, headers(("X-Total-Count" = u64, description = "Users matching the filters"))),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Query(query): Query<ListUsersQuery>,
) -> Result<(HeaderMap, Json<Vec<UserOut>>), ApiError> {
    let (filter, skip, limit) = list_params(query)?;
    let (rows, total) = users::list(&state.core, &caller, &filter, skip, limit).await?;
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(total));
    Ok((headers, Json(rows.into_iter().map(UserOut::from).collect())))
}

fn list_params(q: ListUsersQuery) -> Result<(ListFilter, u64, u64), ApiError> {
    let (skip, limit) = parse::page(q.skip, q.limit)?;
    let sort = match q.sort.as_deref() {
        None => None,
        Some(raw) => {
            let (descending, name) = match raw.strip_prefix('-') {
                Some(name) => (true, name),
                None => (false, raw),
            };
            let key = match name {
                "id" => SortKey::Id,
                "email" => SortKey::Email,
                "username" => SortKey::Username,
                "full_name" => SortKey::FullName,
                "created_at" => SortKey::CreatedAt,
                "last_login_at" => SortKey::LastLoginAt,
                _ => {
                    let mut errors = FieldErrors::new();
                    errors.push(
                        "sort",
                        FieldError::new(
                            "Sort by id, email, username, full_name, created_at or last_login_at, with an optional leading '-'",
                            "enum",
                        ),
                    );
                    return Err(ApiError::query(errors));
                }
            };
            Some((key, descending))
        }
    };
    // No stored email, username, name or role name holds a control character, and PostgreSQL
    // and SQLite's full-text index refuse a NUL in a query: such a term is bad input.
    let mut errors = FieldErrors::new();
    for (field, value) in [("search", &q.search), ("role", &q.role)] {
        if let Some(value) = value {
            errors.check(field, no_control_characters(value.trim()));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::query(errors));
    }
    let filter = ListFilter {
        search: q.search,
        active_only: q.active_only.unwrap_or(false),
        is_admin: q.is_admin,
        role: q.role.filter(|r| !r.trim().is_empty()),
        sort,
    };
    Ok((filter, skip, limit))
}

/// Your own user.
#[utoipa::path(
    get,
    path = "/users/me",
    tag = "users",
    security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = ErrorBody))
)]
pub async fn get_me(AuthUser(caller): AuthUser) -> Json<UserOut> {
    Json(caller.user().into())
}

/// Change your own email, username, name or password (`current_password` required with
/// `password`). Account flags sent here are ignored.
#[utoipa::path(
    put,
    path = "/users/me",
    tag = "users",
    request_body = UpdateMeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserOut),
        (status = 400, description = "Malformed JSON or wrong current password", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn update_me(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    JsonBody(req): JsonBody<UpdateMeRequest>,
) -> Result<Json<UserOut>, ApiError> {
    let changes = parse::own_changes(req, &state.core.password_policy)?;
    let id = caller.id();
    let user = users::update(&state.core, &caller, id, changes).await?;
    Ok(Json(user.into()))
}

/// One user (`user:read`, or yourself).
#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    params(("id" = i64, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserOut),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<UserOut>, ApiError> {
    Ok(Json(users::get(&state.core, &caller, id).await?.as_ref().into()))
}

/// Update a user (`user:write`, or yourself without the account flags; `is_admin` needs
/// `admin:all`).
#[utoipa::path(
    put,
    path = "/users/{id}",
    tag = "users",
    params(("id" = i64, Path, description = "User id")),
    request_body = UpdateUserRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Duplicate email/username, or the last admin", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn update_user(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<UpdateUserRequest>,
) -> Result<Json<UserOut>, ApiError> {
    let changes = parse::user_changes(req, &state.core.password_policy)?;
    Ok(Json(
        users::update(&state.core, &caller, id, changes).await?.into(),
    ))
}

/// Delete a user (`user:delete`, or yourself); their sessions go with them.
#[utoipa::path(
    delete,
    path = "/users/{id}",
    tag = "users",
    params(("id" = i64, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The last active admin", body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn delete_user(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    users::delete(&state.core, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create a user as an administrator (`user:write`; `is_admin: true` needs `admin:all`).
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    request_body = CreateUserRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = UserOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn create_user(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    JsonBody(req): JsonBody<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserOut>), ApiError> {
    let account = parse::registration(req.account, &state.core.password_policy)?;
    let user = users::create(
        &state.core,
        &caller,
        account,
        req.is_active.unwrap_or(true),
        req.is_admin.unwrap_or(false),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// One account-flag change by id: `activate`/`deactivate` need `user:write`,
/// `make-admin`/`remove-admin` need `admin:all`.
macro_rules! flag_route {
    ($name:ident, $path:literal, $doc:literal, $service:ident($value:literal)) => {
        #[doc = $doc]
        #[utoipa::path(
                    put,
                    path = $path,
                    tag = "users",
                    params(("id" = i64, Path, description = "User id")),
                    security(("bearer" = [])),
                    responses(
                        (status = 200, body = UserOut),
                        (status = 401, body = ErrorBody),
                        (status = 403, body = ErrorBody),
                        (status = 404, body = ErrorBody),
                        (status = 409, description = "Would remove the last active admin", body = ErrorBody),
                        (status = 422, body = ValidationBody),
                    )
                )]
        pub async fn $name(
            State(state): State<AppState>,
            AuthUser(caller): AuthUser,
            Path(id): Path<i64>,
        ) -> Result<Json<UserOut>, ApiError> {
            Ok(Json(
                users::$service(&state.core, &caller, id, $value)
                    .await?
                    .into(),
            ))
        }
    };
}

flag_route!(
    activate,
    "/users/{id}/activate",
    "Activate a user (`user:write`).",
    set_active(true)
);
flag_route!(
    deactivate,
    "/users/{id}/deactivate",
    "Deactivate a user (`user:write`); their sessions end at once.",
    set_active(false)
);
flag_route!(
    make_admin,
    "/users/{id}/make-admin",
    "Make a user an administrator (`admin:all`).",
    set_admin(true)
);
flag_route!(
    remove_admin,
    "/users/{id}/remove-admin",
    "Remove administrator rights (`admin:all`); never from yourself or the last active admin.",
    set_admin(false)
);

fn bulk_ids(req: BulkRequest) -> Result<Vec<i64>, ApiError> {
    let mut errors = FieldErrors::new();
    let ids = errors.required("user_ids", req.user_ids);
    if ids.as_ref().is_some_and(|ids| ids.len() > users::MAX_BULK) {
        errors.push(
            "user_ids",
            FieldError::new("At most 1000 ids per request", "too_long"),
        );
    }
    match ids {
        Some(ids) if errors.is_empty() => Ok(ids),
        _ => Err(ApiError::body(errors)),
    }
}

async fn bulk_update(
    state: &AppState,
    caller: &Caller,
    req: BulkRequest,
    action: BulkAction,
) -> Result<Json<BulkUpdatedOut>, ApiError> {
    let outcome = users::bulk(&state.core, caller, &bulk_ids(req)?, action).await?;
    Ok(Json(BulkUpdatedOut {
        updated: outcome.changed,
        not_found: outcome.not_found,
    }))
}

/// Activate many users in one transaction (`user:write`).
#[utoipa::path(
    put,
    path = "/users/bulk/activate",
    tag = "users",
    request_body = BulkRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = BulkUpdatedOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn bulk_activate(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    JsonBody(req): JsonBody<BulkRequest>,
) -> Result<Json<BulkUpdatedOut>, ApiError> {
    bulk_update(&state, &caller, req, BulkAction::Activate).await
}

/// Deactivate many users in one transaction (`user:write`); their sessions end.
#[utoipa::path(
    put,
    path = "/users/bulk/deactivate",
    tag = "users",
    request_body = BulkRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = BulkUpdatedOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "Would remove the last active admin", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn bulk_deactivate(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    JsonBody(req): JsonBody<BulkRequest>,
) -> Result<Json<BulkUpdatedOut>, ApiError> {
    bulk_update(&state, &caller, req, BulkAction::Deactivate).await
}

/// Delete many users in one transaction (`user:delete`): all existing ones or none.
#[utoipa::path(
    put,
    path = "/users/bulk/delete",
    tag = "users",
    request_body = BulkRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = BulkDeletedOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "Would remove the last active admin, or a user is still referenced", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn bulk_delete(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    JsonBody(req): JsonBody<BulkRequest>,
) -> Result<Json<BulkDeletedOut>, ApiError> {
    let outcome = users::bulk(&state.core, &caller, &bulk_ids(req)?, BulkAction::Delete).await?;
    Ok(Json(BulkDeletedOut {
        deleted: outcome.changed,
        not_found: outcome.not_found,
    }))
}
