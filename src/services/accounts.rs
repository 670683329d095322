//! Registration, login and resolving a token back to its caller.

use sea_orm::TransactionTrait;

use super::{Caller, Core, ServiceError};
use crate::domain::{Email, Password, SecretString, Username};
use crate::store::entities::user::Model as User;
use crate::store::{self, sessions, users};

/// A registration that passed parsing.
#[derive(Debug)]
pub struct NewAccount {
    pub email: Email,
    pub username: Option<Username>,
    pub full_name: Option<String>,
    pub password: Password,
}

/// Where a login came from, kept with the session.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub address: Option<String>,
}

/// What a successful login hands out.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub session_id: String,
}

/// Creates an ordinary account (active, not admin).
pub async fn register(core: &Core, account: NewAccount) -> Result<User, ServiceError> {
    create_user(core, account, true, false).await
}

/// Creates a user with the given flags. Uniqueness is left to the database's unique indexes,
/// so concurrent registrations of one email cannot both succeed.
pub async fn create_user(
    core: &Core,
    account: NewAccount,
    is_active: bool,
    is_admin: bool,
) -> Result<User, ServiceError> {
    let password_hash = core.hasher.hash(account.password.secret()).await?;
    let user = users::insert(
        &core.db,
        users::NewUser {
            email: account.email.as_str().to_owned(),
            username: account.username.map(|u| u.as_str().to_owned()),
            full_name: account.full_name,
            password_hash,
            is_active,
            is_admin,
        },
        core.clock.now(),
    )
    .await?;
    tracing::info!(user_id = user.id, "user registered");
    Ok(user)
}

/// Checks a login (email or username) and password; on success opens a session and issues an
/// access token for it.
pub async fn login(
    core: &Core,
    login: &str,
    password: &SecretString,
    client: ClientInfo,
) -> Result<IssuedTokens, ServiceError> {
    let user = users::find_by_login(&core.db, login).await?;
    // Verify even when the user is unknown (against a dummy hash): same time, same answer.
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let matched = core.hasher.verify(password, stored).await?;
    let user = match user {
        Some(user) if matched => user,
        _ => return Err(ServiceError::InvalidCredentials),
    };
    if !user.is_active {
        return Err(ServiceError::InactiveUser);
    }
    let now = core.clock.now();
    let txn = core.db.begin().await?;
    let session = sessions::insert(
        &txn,
        sessions::NewSession {
            user_id: user.id,
            expires_at: now + core.session_ttl,
            user_agent: client.user_agent,
            client_addr: client.address,
        },
        now,
    )
    .await?;
    users::set_last_login(&txn, user.id, now).await?;
    txn.commit().await?;
    let access_token = core.tokens.issue(user.id, &session.id, now)?;
    tracing::info!(user_id = user.id, "login succeeded");
    Ok(IssuedTokens {
        access_token,
        expires_in: core.tokens.access_ttl().num_seconds(),
        session_id: session.id,
    })
}

/// Resolves a bearer token to its caller: a valid signature is not enough, the session must be
/// live and the user active, checked against the database in one query.
pub async fn authenticate(core: &Core, token: &str) -> Result<Caller, ServiceError> {
    const INVALID: ServiceError = ServiceError::Unauthenticated("Could not validate credentials");
    let now = core.clock.now();
    let claims = core.tokens.verify(token, now).map_err(|_| INVALID)?;
    let Some((session, user)) = store::sessions::find_with_user(&core.db, &claims.sid).await? else {
        return Err(INVALID);
    };
    let live = session.revoked_at.is_none() && session.expires_at > now;
    if Some(user.id) != claims.user_id() || !live || !user.is_active {
        return Err(INVALID);
    }
    Ok(Caller::new(user, session.id, Vec::new()))
}
