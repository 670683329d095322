use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};

use super::parse;
use super::schemas::{
    LoginRequest, RefreshRequest, RegisterRequest, RevokedOut, SessionOut, TokenOut, UserOut,
};
use crate::domain::FieldErrors;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody, ValidationBody};
use crate::http::extract::{
    AuthUser, Client, JsonBody, Path, body_rejection, is_form, is_json, parse_json, parse_urlencoded,
};
use crate::services::accounts;

/// Create an account. Public; the new user is active and not an admin.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Created", body = UserOut),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "Email or username taken", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ValidationBody),
        (status = 429, description = "Too many requests from this client", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<UserOut>), ApiError> {
    let account = parse::registration(req, &state.core.password_policy)?;
    let user = accounts::register(&state.core, account).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Exchange credentials for an access token. Takes the OAuth2 password form
/// (`application/x-www-form-urlencoded`) or the same keys as JSON; `username` may be the email.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body(content(
        (LoginRequest = "application/x-www-form-urlencoded"),
        (LoginRequest = "application/json"),
    )),
    responses(
        (status = 200, body = TokenOut),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Unknown user or wrong password", body = ErrorBody),
        (status = 403, description = "Inactive user", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ValidationBody),
        (status = 429, description = "Too many failed logins or requests; see Retry-After", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    request: Request,
) -> Result<([(header::HeaderName, &'static str); 1], Json<TokenOut>), ApiError> {
    let json = is_json(request.headers());
    if !json && !is_form(request.headers()) {
        return Err(ApiError::UnsupportedMediaType(
            "application/x-www-form-urlencoded or application/json",
        ));
    }
    let bytes = Bytes::from_request(request, &state)
        .await
        .map_err(body_rejection)?;
    let req: LoginRequest = if json {
        parse_json(&bytes)?
    } else {
        parse_urlencoded(&bytes, "body")?
    };
    let mut errors = FieldErrors::new();
    let username = errors.required("username", req.username.filter(|u| !u.trim().is_empty()));
    let password = errors.required("password", req.password);
    let (Some(username), Some(password)) = (username, password) else {
        return Err(ApiError::body(errors));
    };
    let issued = accounts::login(&state.core, &username, &password, client).await?;
    // Tokens must not be kept by caches between the client and us.
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(issued.into())))
}

/// Trade a refresh token for a new pair. The presented token is spent: presenting it again
/// (after a few seconds' grace for concurrent refreshes) revokes the whole session.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenOut),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ValidationBody),
        (status = 429, description = "Too many requests from this client", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> Result<([(header::HeaderName, &'static str); 1], Json<TokenOut>), ApiError> {
    let mut errors = FieldErrors::new();
    let Some(token) = errors.required("refresh_token", req.refresh_token.filter(|t| !t.is_empty())) else {
        return Err(ApiError::body(errors));
    };
    let issued = accounts::refresh(&state.core, &token).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(issued.into())))
}

/// End this session: its access and refresh tokens stop working at once.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 204, description = "Logged out"), (status = 401, body = ErrorBody))
)]
pub async fn logout(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<StatusCode, ApiError> {
    accounts::logout(&state.core, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End every one of your sessions, this one included.
#[utoipa::path(
    post,
    path = "/auth/logout-all",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = RevokedOut), (status = 401, body = ErrorBody))
)]
pub async fn logout_all(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<Json<RevokedOut>, ApiError> {
    let revoked = accounts::logout_all(&state.core, &caller).await?;
    Ok(Json(RevokedOut { revoked }))
}

/// Your live sessions, newest first; `current` marks the one making this request.
#[utoipa::path(
    get,
    path = "/auth/sessions",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionOut>), (status = 401, body = ErrorBody))
)]
pub async fn sessions(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<Json<Vec<SessionOut>>, ApiError> {
    let sessions = accounts::list_sessions(&state.core, &caller).await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionOut::new(s, &caller.session_id))
            .collect(),
    ))
}

/// End one of your sessions (for example a device you no longer use).
#[utoipa::path(
    delete,
    path = "/auth/sessions/{id}",
    tag = "auth",
    params(("id" = String, Path, description = "Session id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Session ended"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session of yours", body = ErrorBody),
    )
)]
pub async fn end_session(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    accounts::end_session(&state.core, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The authenticated user.
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = ErrorBody))
)]
pub async fn me(AuthUser(caller): AuthUser) -> Json<UserOut> {
    Json(caller.user().into())
}

/// Checks a token: answers its user if the token is valid.
#[utoipa::path(
    post,
    path = "/auth/test-token",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = ErrorBody))
)]
pub async fn test_token(AuthUser(caller): AuthUser) -> Json<UserOut> {
    Json(caller.user().into())
}
