//! `/api/…` handlers. Each extracts, calls the same service the native API calls, and answers
//! in the Flask generation's shapes.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{CompatBadRequestBody, CompatError, CompatErrorBody};
use crate::domain::{Email, FieldErrors, Password, SecretString, Username};
use crate::http::AppState;
use crate::http::extract::{AuthUser, Client, JsonBody, Path};
use crate::services::Caller;
use crate::services::accounts::{self, NewAccount};
use crate::services::users::{self, UserChanges};
use crate::store::entities::user::Model as User;
use crate::store::users::ListFilter;

/// A user as the Flask generation shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompatUser {
    pub id: i64,
    /// `null` for users who registered without one on the native API.
    pub username: Option<String>,
    pub email: String,
}

impl From<&User> for CompatUser {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
        }
    }
}

impl From<User> for CompatUser {
    fn from(u: User) -> Self {
        Self::from(&u)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompatMessage {
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompatToken {
    pub access_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CompatRegister {
    #[schema(required = true, example = "testuser")]
    pub username: Option<String>,
    #[schema(required = true, example = "test@example.com")]
    pub email: Option<String>,
    #[schema(required = true, value_type = String, format = Password, example = "testpass")]
    pub password: Option<SecretString>,
}

/// Extra keys (such as `email`) are ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CompatLogin {
    /// A username, or the email of a user who has none.
    #[schema(required = true, example = "testuser")]
    pub username: Option<String>,
    #[schema(required = true, value_type = String, format = Password, example = "testpass")]
    pub password: Option<SecretString>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CompatUpdate {
    pub username: Option<String>,
    pub email: Option<String>,
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
}

/// A JSON body whose failures answer in the compat shapes.
pub struct CompatJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CompatJson<T> {
    type Rejection = CompatError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBody(value) = JsonBody::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// The caller, with failures in the compat shapes.
pub struct CompatAuth(pub Caller);

impl FromRequestParts<AppState> for CompatAuth {
    type Rejection = CompatError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let AuthUser(caller) = AuthUser::from_request_parts(parts, state).await?;
        Ok(Self(caller))
    }
}

/// A numeric path id; anything else is a 404, as Flask's `<int:id>` converter answers.
pub struct CompatId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for CompatId {
    type Rejection = CompatError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<i64>::from_request_parts(parts, state).await?;
        Ok(Self(id))
    }
}

/// `GET /api/test` — the tutorial's first route.
#[utoipa::path(get, path = "/api/test", tag = "compat", responses((status = 200, body = CompatMessage)))]
pub async fn test() -> Json<CompatMessage> {
    Json(CompatMessage {
        message: "Welcome to the User Management Microservice!".into(),
    })
}

fn new_account(req: CompatRegister, state: &AppState) -> Result<NewAccount, CompatError> {
    let mut errors = FieldErrors::new();
    let username = errors
        .required("username", req.username)
        .and_then(|u| errors.check("username", Username::parse(&u)));
    let email = errors
        .required("email", req.email)
        .and_then(|e| errors.check("email", Email::parse(&e)));
    let identities = [
        email.as_ref().map_or("", Email::as_str),
        username.as_ref().map_or("", Username::as_str),
    ];
    let password = errors.required("password", req.password).and_then(|p| {
        errors.check(
            "password",
            Password::parse(&p, &state.core.password_policy, &identities),
        )
    });
    match (username, email, password) {
        (Some(username), Some(email), Some(password)) if errors.is_empty() => Ok(NewAccount {
            email,
            username: Some(username),
            full_name: None,
            password,
        }),
        _ => Err(crate::services::ServiceError::Validation(errors).into()),
    }
}

/// `POST /api/register` — `{username, email, password}` → 201 with the user.
#[utoipa::path(
    post, path = "/api/register", tag = "compat", request_body = CompatRegister,
    responses(
        (status = 201, body = CompatUser),
        (status = 400, description = "Validation error, or the username or email exists", body = CompatBadRequestBody),
        (status = 413, body = CompatErrorBody), (status = 415, body = CompatErrorBody),
        (status = 429, body = CompatErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    CompatJson(req): CompatJson<CompatRegister>,
) -> Result<(StatusCode, Json<CompatUser>), CompatError> {
    let account = new_account(req, &state)?;
    let user = accounts::register(&state.core, account).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// `POST /api/users` — the UserVault README's "create user"; the same as register.
#[utoipa::path(
    post, path = "/api/users", tag = "compat", request_body = CompatRegister,
    responses(
        (status = 201, body = CompatUser),
        (status = 400, description = "Validation error, or the username or email exists", body = CompatBadRequestBody),
        (status = 413, body = CompatErrorBody), (status = 415, body = CompatErrorBody),
        (status = 429, body = CompatErrorBody),
    )
)]
pub async fn create_user(
    state: State<AppState>,
    body: CompatJson<CompatRegister>,
) -> Result<(StatusCode, Json<CompatUser>), CompatError> {
    register(state, body).await
}

/// `POST /api/login` — `{username, password}` → `{"access_token": …}`.
#[utoipa::path(
    post, path = "/api/login", tag = "compat", request_body = CompatLogin,
    responses(
        (status = 200, body = CompatToken),
        (status = 400, body = CompatBadRequestBody),
        (status = 401, description = "Invalid credentials", body = CompatErrorBody),
        (status = 403, description = "Inactive user", body = CompatErrorBody),
        (status = 413, body = CompatErrorBody), (status = 415, body = CompatErrorBody),
        (status = 429, description = "Too many failed logins or requests; see Retry-After", body = CompatErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    CompatJson(req): CompatJson<CompatLogin>,
) -> Result<Json<CompatToken>, CompatError> {
    let mut errors = FieldErrors::new();
    let username = errors.required("username", req.username.filter(|u| !u.trim().is_empty()));
    let password = errors.required("password", req.password);
    let (Some(username), Some(password)) = (username, password) else {
        return Err(crate::services::ServiceError::Validation(errors).into());
    };
    let issued = accounts::login(&state.core, &username, &password, client).await?;
    Ok(Json(CompatToken {
        access_token: issued.access_token,
    }))
}

/// `GET /api/users` — every user, up to 1000 (`user:read`); `skip`/`limit` page further.
#[utoipa::path(
    get, path = "/api/users", tag = "compat", security(("bearer" = [])),
    params(crate::http::native::schemas::PageQuery),
    responses(
        (status = 200, body = Vec<CompatUser>), (status = 400, body = CompatBadRequestBody),
        (status = 401, body = CompatErrorBody), (status = 403, body = CompatErrorBody),
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    CompatAuth(caller): CompatAuth,
    query: Result<
        crate::http::extract::Query<crate::http::native::schemas::PageQuery>,
        crate::http::error::ApiError,
    >,
) -> Result<(HeaderMap, Json<Vec<CompatUser>>), CompatError> {
    let crate::http::extract::Query(page) = query?;
    let (skip, limit) = crate::http::native::parse_page(page.skip, Some(page.limit.unwrap_or(1000)))?;
    let (rows, total) = users::list(&state.core, &caller, &ListFilter::default(), skip, limit).await?;
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(total));
    Ok((headers, Json(rows.into_iter().map(CompatUser::from).collect())))
}

/// `GET /api/users/<id>` — yourself, or anyone with `user:read`.
#[utoipa::path(
    get, path = "/api/users/{id}", tag = "compat", params(("id" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = CompatUser), (status = 401, body = CompatErrorBody),
        (status = 403, body = CompatErrorBody), (status = 404, body = CompatErrorBody),
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    CompatId(id): CompatId,
    CompatAuth(caller): CompatAuth,
) -> Result<Json<CompatUser>, CompatError> {
    Ok(Json(users::get(&state.core, &caller, id).await?.as_ref().into()))
}

/// `PUT /api/users/<id>` — change `username`, `email`, `password` (yourself, or `user:write`).
#[utoipa::path(
    put, path = "/api/users/{id}", tag = "compat", params(("id" = i64, Path)), request_body = CompatUpdate,
    security(("bearer" = [])),
    responses(
        (status = 200, body = CompatUser), (status = 400, body = CompatBadRequestBody),
        (status = 401, body = CompatErrorBody), (status = 403, body = CompatErrorBody),
        (status = 404, body = CompatErrorBody), (status = 413, body = CompatErrorBody),
        (status = 415, body = CompatErrorBody),
    )
)]
pub async fn update_user(
    State(state): State<AppState>,
    CompatId(id): CompatId,
    CompatAuth(caller): CompatAuth,
    CompatJson(req): CompatJson<CompatUpdate>,
) -> Result<Json<CompatUser>, CompatError> {
    let mut errors = FieldErrors::new();
    let email = req.email.and_then(|e| errors.check("email", Email::parse(&e)));
    let username = req
        .username
        .and_then(|u| errors.check("username", Username::parse(&u)));
    let identities = [
        email.as_ref().map_or("", Email::as_str),
        username.as_ref().map_or("", Username::as_str),
    ];
    let password = req.password.and_then(|p| {
        errors.check(
            "password",
            Password::parse(&p, &state.core.password_policy, &identities),
        )
    });
    errors
        .finish()
        .map_err(|e| CompatError::from(crate::services::ServiceError::Validation(e)))?;
    let changes = UserChanges {
        email,
        username: username.map(Some),
        password,
        ..UserChanges::default()
    };
    Ok(Json(
        users::update(&state.core, &caller, id, changes).await?.into(),
    ))
}

/// `DELETE /api/users/<id>` — yourself, or anyone with `user:delete`.
#[utoipa::path(
    delete, path = "/api/users/{id}", tag = "compat", params(("id" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = CompatMessage, example = json!({"message": "User deleted successfully"})),
        (status = 401, body = CompatErrorBody), (status = 403, body = CompatErrorBody),
        (status = 404, body = CompatErrorBody), (status = 409, body = CompatErrorBody),
    )
)]
pub async fn delete_user(
    State(state): State<AppState>,
    CompatId(id): CompatId,
    CompatAuth(caller): CompatAuth,
) -> Result<Json<CompatMessage>, CompatError> {
    users::delete(&state.core, &caller, id).await?;
    Ok(Json(CompatMessage {
        message: "User deleted successfully".into(),
    }))
}

/// `GET /api/protected` — `{"message": "Hello, <username>!"}` for any signed-in user.
#[utoipa::path(
    get, path = "/api/protected", tag = "compat", security(("bearer" = [])),
    responses((status = 200, body = CompatMessage), (status = 401, body = CompatErrorBody))
)]
pub async fn protected(CompatAuth(caller): CompatAuth) -> Json<CompatMessage> {
    let user = caller.user();
    let name = user.username.as_deref().unwrap_or(&user.email);
    Json(CompatMessage {
        message: format!("Hello, {name}!"),
    })
}
