//! `/profile/…` — both the `003` (`/profile/me…`) and the `004` (`/profile/…`) paths.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::parse;
use super::schemas::{Preferences, ProfileOut, ProfileRequest, PublicProfileOut};
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody, ValidationBody};
use crate::http::extract::{AuthUser, JsonBody, Path};
use crate::services::profiles;

/// Your full profile.
#[utoipa::path(
    get,
    path = "/profile",
    tag = "profile",
    security(("bearer" = [])),
    responses((status = 200, body = ProfileOut), (status = 401, body = ErrorBody))
)]
pub async fn get_profile(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<Json<ProfileOut>, ApiError> {
    Ok(Json(profiles::own(&state.core, &caller).await?.into()))
}

/// Your full profile (the `/profile/me` spelling).
#[utoipa::path(
    get,
    path = "/profile/me",
    tag = "profile",
    security(("bearer" = [])),
    responses((status = 200, body = ProfileOut), (status = 401, body = ErrorBody))
)]
pub async fn get_profile_me(state: State<AppState>, caller: AuthUser) -> Result<Json<ProfileOut>, ApiError> {
    get_profile(state, caller).await
}

async fn apply(state: &AppState, caller: AuthUser, req: ProfileRequest) -> Result<ProfileOut, ApiError> {
    let changes = parse::profile_changes(req, state.core.clock.now().date_naive())?;
    Ok(profiles::update_own(&state.core, &caller.0, changes)
        .await?
        .into())
}

/// Fill in your profile; answers 201 with the whole profile.
#[utoipa::path(
    post,
    path = "/profile",
    tag = "profile",
    request_body = ProfileRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = ProfileOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn create_profile(
    State(state): State<AppState>,
    caller: AuthUser,
    JsonBody(req): JsonBody<ProfileRequest>,
) -> Result<(StatusCode, Json<ProfileOut>), ApiError> {
    Ok((StatusCode::CREATED, Json(apply(&state, caller, req).await?)))
}

/// Change some profile fields; omitted fields stay, `null` clears.
#[utoipa::path(
    put,
    path = "/profile",
    tag = "profile",
    request_body = ProfileRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = ProfileOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn update_profile(
    State(state): State<AppState>,
    caller: AuthUser,
    JsonBody(req): JsonBody<ProfileRequest>,
) -> Result<Json<ProfileOut>, ApiError> {
    Ok(Json(apply(&state, caller, req).await?))
}

/// Change some profile fields (the `/profile/me` spelling).
#[utoipa::path(
    put,
    path = "/profile/me",
    tag = "profile",
    request_body = ProfileRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = ProfileOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn update_profile_me(
    state: State<AppState>,
    caller: AuthUser,
    body: JsonBody<ProfileRequest>,
) -> Result<Json<ProfileOut>, ApiError> {
    update_profile(state, caller, body).await
}

/// Clear every profile field and your preferences.
#[utoipa::path(
    delete,
    path = "/profile",
    tag = "profile",
    security(("bearer" = [])),
    responses((status = 204, description = "Cleared"), (status = 401, body = ErrorBody))
)]
pub async fn clear_profile(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<StatusCode, ApiError> {
    profiles::clear_own(&state.core, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Your preferences (an empty object when none are set).
#[utoipa::path(
    get,
    path = "/profile/preferences",
    tag = "profile",
    security(("bearer" = [])),
    responses((status = 200, body = Preferences), (status = 401, body = ErrorBody))
)]
pub async fn get_preferences(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<Json<Map<String, Value>>, ApiError> {
    let user = profiles::own(&state.core, &caller).await?;
    Ok(Json(profiles::preferences_of(&user)))
}

/// Your preferences (the `/profile/me` spelling).
#[utoipa::path(
    get,
    path = "/profile/me/preferences",
    tag = "profile",
    security(("bearer" = [])),
    responses((status = 200, body = Preferences), (status = 401, body = ErrorBody))
)]
pub async fn get_preferences_me(
    state: State<AppState>,
    caller: AuthUser,
) -> Result<Json<Map<String, Value>>, ApiError> {
    get_preferences(state, caller).await
}

/// Merge keys into your preferences (`null` removes a key); answers the result.
#[utoipa::path(
    put,
    path = "/profile/preferences",
    tag = "profile",
    request_body = Preferences,
    security(("bearer" = [])),
    responses(
        (status = 200, body = Preferences),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn update_preferences(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    JsonBody(patch): JsonBody<Map<String, Value>>,
) -> Result<Json<Map<String, Value>>, ApiError> {
    Ok(Json(
        profiles::merge_own_preferences(&state.core, &caller, patch).await?,
    ))
}

/// Merge keys into your preferences (the `/profile/me` spelling).
#[utoipa::path(
    put,
    path = "/profile/me/preferences",
    tag = "profile",
    request_body = Preferences,
    security(("bearer" = [])),
    responses(
        (status = 200, body = Preferences),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn update_preferences_me(
    state: State<AppState>,
    caller: AuthUser,
    body: JsonBody<Map<String, Value>>,
) -> Result<Json<Map<String, Value>>, ApiError> {
    update_preferences(state, caller, body).await
}

/// Remove your avatar.
#[utoipa::path(
    delete,
    path = "/profile/avatar",
    tag = "profile",
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody))
)]
pub async fn remove_avatar(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<StatusCode, ApiError> {
    let changes = profiles::ProfileChanges {
        avatar_url: Some(None),
        ..Default::default()
    };
    profiles::update_own(&state.core, &caller, changes).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove your avatar (the `/profile/me` spelling).
#[utoipa::path(
    delete,
    path = "/profile/me/avatar",
    tag = "profile",
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody))
)]
pub async fn remove_avatar_me(state: State<AppState>, caller: AuthUser) -> Result<StatusCode, ApiError> {
    remove_avatar(state, caller).await
}

/// Another user's public profile: shown when they set `privacy_public_profile: true`
/// (or to holders of `user:read`); 404 otherwise.
#[utoipa::path(
    get,
    path = "/profile/{user_id}",
    tag = "profile",
    params(("user_id" = i64, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = PublicProfileOut),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ValidationBody),
    )
)]
pub async fn public_profile(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(user_id): Path<i64>,
) -> Result<Json<PublicProfileOut>, ApiError> {
    Ok(Json(
        profiles::public(&state.core, &caller, user_id).await?.into(),
    ))
}
