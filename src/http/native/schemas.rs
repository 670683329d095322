//! Request and response bodies of the native API.
//!
//! Request fields are optional at the serde level so that every missing or invalid field can be
//! reported in one 422; the parse functions below turn them into domain types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::SecretString;
use crate::store::entities::user::Model as User;

/// A user as the native API shows it. Never includes the password hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub email: String,
    pub username: Option<String>,
    pub full_name: Option<String>,
    pub is_active: bool,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            username: u.username,
            full_name: u.full_name,
            is_active: u.is_active,
            is_admin: u.is_admin,
            created_at: u.created_at,
            updated_at: u.updated_at,
            last_login_at: u.last_login_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(required = true, example = "alice@example.com")]
    pub email: Option<String>,
    #[schema(required = true, value_type = String, format = Password, min_length = 8, max_length = 128)]
    pub password: Option<SecretString>,
    /// Also accepted as `name`.
    #[serde(alias = "name")]
    #[schema(example = "Alice Johnson")]
    pub full_name: Option<String>,
    #[schema(example = "alice", pattern = "^[A-Za-z0-9._-]{3,64}$")]
    pub username: Option<String>,
}

/// OAuth2 password-form fields; `username` may be an email or a username.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(required = true, example = "alice@example.com")]
    pub username: Option<String>,
    #[schema(required = true, value_type = String, format = Password)]
    pub password: Option<SecretString>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenOut {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until `access_token` expires.
    pub expires_in: i64,
}

/// Changes a user makes to their own account. Omitted fields stay as they are; `null` clears
/// `username` and `full_name`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UpdateMeRequest {
    pub email: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub username: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable", alias = "name")]
    #[schema(value_type = Option<String>)]
    pub full_name: Option<Option<String>>,
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
    /// Required with `password` when changing your own password.
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<SecretString>,
}

/// An update by id: the self-service fields plus the account flags (which need `user:write`,
/// and `admin:all` for `is_admin`).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UpdateUserRequest {
    #[serde(flatten)]
    pub own: UpdateMeRequest,
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
}

/// Query parameters of `GET /users/`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// How many matching users to skip (default 0).
    #[param(minimum = 0)]
    pub skip: Option<i64>,
    /// Page size (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Case-insensitive substring of email, username or full name.
    pub search: Option<String>,
    /// Only active users.
    pub active_only: Option<bool>,
    /// Only admins (`true`) or only non-admins (`false`).
    pub is_admin: Option<bool>,
    /// `id`, `email`, `username`, `full_name`, `created_at` or `last_login_at`; a leading `-`
    /// sorts descending.
    pub sort: Option<String>,
}

/// Service information at `/`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceInfo {
    pub name: &'static str,
    pub version: &'static str,
    pub docs: &'static str,
    pub redoc: &'static str,
    pub openapi: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
