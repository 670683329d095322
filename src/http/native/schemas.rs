//! Request and response bodies of the native API.
//!
//! Request fields are optional at the serde level so that every missing or invalid field can be
//! reported in one 422; the parse functions below turn them into domain types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::SecretString;
use crate::services::profiles::preferences_of;
use crate::store::entities::session::Model as Session;
use crate::store::entities::user::Model as User;

/// Timestamps exactly as chrono's own `Serialize` writes them (RFC 3339, UTC as `Z`, as many
/// fractional digits as the value needs), but formatted in one piece: chrono's writes them
/// through `collect_str`, which escapes each of some twenty fragments on its own, and that was
/// a tenth of the CPU of a request answering one user.
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    pub fn serialize_option<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => serialize(at, serializer),
            None => serializer.serialize_none(),
        }
    }

    #[cfg(test)]
    mod tests {
        use chrono::{TimeZone, Utc};

        #[test]
        fn timestamps_read_exactly_as_chrono_writes_them() {
            #[derive(serde::Serialize)]
            struct Ours(#[serde(serialize_with = "super::serialize")] chrono::DateTime<Utc>);
            let second = Utc.with_ymd_and_hms(2026, 12, 3, 4, 9, 24).unwrap();
            for nanos in [0, 1, 30_000_000, 30_404_000, 123_456_789, 999_999_999] {
                let at = second + chrono::TimeDelta::nanoseconds(nanos);
                assert_eq!(
                    serde_json::to_string(&Ours(at)).unwrap(),
                    serde_json::to_string(&at).unwrap(),
                    "{nanos} ns"
                );
            }
        }
    }
}

/// A user as the native API shows it. Never includes the password hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub email: String,
    pub username: Option<String>,
    pub full_name: Option<String>,
    pub is_active: bool,
    pub is_admin: bool,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub updated_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339::serialize_option")]
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<&User> for UserOut {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            username: u.username.clone(),
            full_name: u.full_name.clone(),
            is_active: u.is_active,
            is_admin: u.is_admin,
            created_at: u.created_at,
            updated_at: u.updated_at,
            last_login_at: u.last_login_at,
        }
    }
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self::from(&u)
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
    /// Opaque; trade it at `POST /auth/refresh` for a new pair. Single use.
    pub refresh_token: String,
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
    /// Only admins (`true`) or only non-admins (`false`), by the `is_admin` flag.
    pub is_admin: Option<bool>,
    /// Only holders of the role with this name.
    pub role: Option<String>,
    /// `id`, `email`, `username`, `full_name`, `created_at` or `last_login_at`; a leading `-`
    /// sorts descending.
    pub sort: Option<String>,
}

impl From<crate::services::accounts::IssuedTokens> for TokenOut {
    fn from(issued: crate::services::accounts::IssuedTokens) -> Self {
        Self {
            access_token: issued.access_token,
            refresh_token: issued.refresh_token,
            token_type: "bearer",
            expires_in: issued.expires_in,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    #[schema(required = true)]
    pub refresh_token: Option<String>,
}

/// One of your sessions (a login and its refreshes).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub id: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
    /// When tokens were last issued for this session.
    #[serde(serialize_with = "rfc3339::serialize")]
    pub last_used_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub client_address: Option<String>,
    /// Whether this is the session of the token making the request.
    pub current: bool,
}

impl SessionOut {
    pub fn new(session: Session, current_id: &str) -> Self {
        Self {
            current: session.id == current_id,
            id: session.id,
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            expires_at: session.expires_at,
            user_agent: session.user_agent,
            client_address: session.client_addr,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedOut {
    /// How many sessions ended.
    pub revoked: u64,
}

/// A user created by an administrator.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUserRequest {
    #[serde(flatten)]
    pub account: RegisterRequest,
    /// Default `true`.
    pub is_active: Option<bool>,
    /// Default `false`; `true` needs `admin:all`.
    pub is_admin: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BulkRequest {
    /// At most 1000 ids.
    #[schema(required = true, example = json!([3, 4, 5]))]
    pub user_ids: Option<Vec<i64>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkUpdatedOut {
    pub updated: u64,
    /// Requested ids that do not exist.
    pub not_found: Vec<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkDeletedOut {
    pub deleted: u64,
    pub not_found: Vec<i64>,
}

/// Your full profile: account fields, profile fields and preferences.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileOut {
    pub id: i64,
    pub email: String,
    pub username: Option<String>,
    pub full_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub location: Option<String>,
    pub website: Option<String>,
    pub phone_number: Option<String>,
    pub birth_date: Option<chrono::NaiveDate>,
    #[schema(value_type = Object)]
    pub preferences: serde_json::Map<String, serde_json::Value>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl From<User> for ProfileOut {
    fn from(u: User) -> Self {
        Self {
            preferences: preferences_of(&u),
            id: u.id,
            email: u.email,
            username: u.username,
            full_name: u.full_name,
            bio: u.bio,
            avatar_url: u.avatar_url,
            location: u.location,
            website: u.website,
            phone_number: u.phone_number,
            birth_date: u.birth_date,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// What anyone may see of a user who made their profile public.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicProfileOut {
    pub id: i64,
    pub username: Option<String>,
    pub full_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub location: Option<String>,
    pub website: Option<String>,
}

impl From<User> for PublicProfileOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            full_name: u.full_name,
            bio: u.bio,
            avatar_url: u.avatar_url,
            location: u.location,
            website: u.website,
        }
    }
}

/// Profile fields to set. Omitted fields stay as they are; `null` clears one.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ProfileRequest {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub bio: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub avatar_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 255)]
    pub location: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub website: Option<Option<String>>,
    /// Also accepted as `phone`.
    #[serde(default, deserialize_with = "nullable", alias = "phone")]
    #[schema(value_type = Option<String>, max_length = 20, example = "+1-555-0123")]
    pub phone_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = Date, example = "1990-05-15")]
    pub birth_date: Option<Option<String>>,
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

/// Preferences: a JSON object. The keys below are checked; any other key is kept as given.
/// In an update, `null` removes a key.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation only: bodies are handled as JSON objects
pub struct Preferences {
    #[schema(pattern = "^(light|dark|system)$")]
    theme: Option<String>,
    /// A BCP 47 tag such as `en` or `pt-BR`.
    language: Option<String>,
    /// An IANA time zone such as `America/Los_Angeles`.
    timezone: Option<String>,
    notifications_email: Option<bool>,
    notifications_sms: Option<bool>,
    /// Whether `GET /profile/{user_id}` shows your profile to everyone.
    privacy_public_profile: Option<bool>,
}

/// `skip`/`limit` paging of a list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// How many items to skip (default 0).
    #[param(minimum = 0)]
    pub skip: Option<i64>,
    /// Page size (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PermissionOut {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub resource: String,
    pub action: String,
}

impl From<crate::store::entities::permission::Model> for PermissionOut {
    fn from(p: crate::store::entities::permission::Model) -> Self {
        Self {
            id: p.id,
            name: p.name,
            description: p.description,
            resource: p.resource,
            action: p.action,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoleOut {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub is_default: bool,
    pub permissions: Vec<PermissionOut>,
}

impl From<crate::services::rbac::RoleWithPermissions> for RoleOut {
    fn from(r: crate::services::rbac::RoleWithPermissions) -> Self {
        Self {
            id: r.role.id,
            name: r.role.name,
            description: r.role.description,
            is_default: r.role.is_default,
            permissions: r.permissions.into_iter().map(PermissionOut::from).collect(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreatePermissionRequest {
    #[schema(required = true, example = "manage_posts")]
    pub name: Option<String>,
    pub description: Option<String>,
    #[schema(required = true, example = "post")]
    pub resource: Option<String>,
    #[schema(required = true, example = "manage")]
    pub action: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UpdatePermissionRequest {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub resource: Option<String>,
    pub action: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateRoleRequest {
    #[schema(required = true, example = "content_editor")]
    pub name: Option<String>,
    pub description: Option<String>,
    /// Given to every new user (default `false`).
    pub is_default: Option<bool>,
    #[schema(example = json!([1, 2, 3]))]
    pub permission_ids: Option<Vec<i64>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UpdateRoleRequest {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub is_default: Option<bool>,
    /// Replaces the role's permissions.
    pub permission_ids: Option<Vec<i64>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AssignRolesRequest {
    /// Optional; must equal the id in the path when given.
    pub user_id: Option<i64>,
    #[schema(required = true, example = json!([1]))]
    pub role_ids: Option<Vec<i64>>,
}

/// A user with their roles.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserWithRolesOut {
    #[serde(flatten)]
    pub user: UserOut,
    pub roles: Vec<RoleOut>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckPermissionRequest {
    #[schema(required = true, example = "user")]
    pub resource: Option<String>,
    #[schema(required = true, example = "read")]
    pub action: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckPermissionOut {
    pub resource: String,
    pub action: String,
    pub allowed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MyPermissionsOut {
    /// Names of your roles.
    pub roles: Vec<String>,
    /// Your effective permissions as `resource:action`.
    #[schema(example = json!(["user:read"]))]
    pub permissions: Vec<String>,
}
