use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};

use super::parse;
use super::schemas::{LoginRequest, RegisterRequest, TokenOut, UserOut};
use crate::domain::FieldErrors;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody, ValidationBody};
use crate::http::extract::{
    AuthUser, Client, JsonBody, body_rejection, is_form, is_json, parse_json, parse_urlencoded,
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
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(TokenOut {
            access_token: issued.access_token,
            token_type: "bearer",
            expires_in: issued.expires_in,
        }),
    ))
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
    Json(caller.user.into())
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
    Json(caller.user.into())
}
