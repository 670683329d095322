//! Registration, login and resolving a token back to its caller.

use std::sync::Arc;

use super::{Caller, Core, ServiceError, throttle};
use crate::auth::password::Verified;
use crate::auth::{hash_refresh_token, new_refresh_token};
use crate::domain::{Email, Password, SecretString, Username, no_control_characters};
use crate::store::entities::session::Model as Session;
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

/// What a successful login or refresh hands out.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
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
    let user = users::insert_with_default_roles(
        &core.db,
        core.sqlite_direct(),
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
    .await?
    .map_err(|taken| ServiceError::Duplicate(taken.into()))?;
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
    // Emails and usernames are parsed before they are stored, and neither admits a control
    // character: such a login names nobody, and PostgreSQL refuses a NUL in any query. (The
    // login is trimmed when it is looked up, so a trailing line break is not one.)
    if no_control_characters(login.trim()).is_err() {
        return Err(ServiceError::InvalidCredentials);
    }
    let keys = throttle::Keys::new(login, client.address.as_deref());
    // A throttled attempt is refused before any hashing: guesses cost the attacker time, not us CPU.
    let (checked, user) = throttle::check(core, &keys, login, core.clock.now()).await?;
    // Verify even when the user is unknown (against a dummy hash): same time, same answer.
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = core.hasher.check(password, stored).await?;
    let user = match user {
        Some(user) if verified != Verified::No => user,
        _ => {
            throttle::failed(core, &keys, core.clock.now()).await?;
            return Err(ServiceError::InvalidCredentials);
        }
    };
    throttle::succeeded(core, &keys, checked).await?;
    if !user.is_active {
        return Err(ServiceError::InactiveUser);
    }
    if verified == Verified::YesRehash {
        upgrade_hash(core, &user, password).await;
    }
    let now = core.clock.now();
    let expires_at = now + core.session_ttl;
    let (refresh_token, refresh_hash) = new_refresh_token();
    let Some(session_id) = sessions::open_for_login(
        &core.db,
        core.sqlite_direct(),
        sessions::NewSession {
            user_id: user.id,
            expires_at,
            user_agent: client.user_agent,
            client_addr: client.address,
        },
        refresh_hash,
        now,
    )
    .await?
    else {
        // Deleted while their password was being checked: nobody to log in any more.
        return Err(ServiceError::InvalidCredentials);
    };
    tracing::info!(user_id = user.id, "login succeeded");
    issue(core, user.id, session_id, refresh_token)
}

/// Replaces an imported (or outdated) hash with Argon2id now that we know the password. A
/// failure only means the upgrade waits for the next login.
async fn upgrade_hash(core: &Core, user: &User, password: &SecretString) {
    let result = async {
        let hash = core.hasher.hash(password).await?;
        users::set_password_hash(&core.db, user.id, &user.password_hash, &hash).await?;
        anyhow::Ok(())
    }
    .await;
    match result {
        Ok(()) => tracing::info!(user_id = user.id, "password hash upgraded to Argon2id"),
        Err(err) => tracing::warn!(user_id = user.id, error = %err, "could not upgrade password hash"),
    }
}

fn issue(
    core: &Core,
    user_id: i64,
    session_id: String,
    refresh_token: String,
) -> Result<IssuedTokens, ServiceError> {
    let access_token = core.tokens.issue(user_id, &session_id, core.clock.now())?;
    Ok(IssuedTokens {
        access_token,
        refresh_token,
        expires_in: core.tokens.access_ttl().num_seconds(),
        session_id,
    })
}

/// Trades a refresh token for a new pair. The presented token is spent; presenting a spent
/// token again after the grace window revokes the whole session (someone copied it).
pub async fn refresh(core: &Core, refresh_token: &str) -> Result<IssuedTokens, ServiceError> {
    const INVALID: ServiceError = ServiceError::Unauthenticated("Invalid or expired refresh token");
    let now = core.clock.now();
    let (new_token, new_hash) = new_refresh_token();
    let expires_at = now + core.session_ttl;
    let Some(found) = sessions::find_refresh_and_rotate(
        &core.db,
        core.sqlite_direct().map(Arc::as_ref),
        &hash_refresh_token(refresh_token),
        &new_hash,
        now,
        expires_at,
    )
    .await?
    else {
        return Err(INVALID);
    };
    let sessions::FoundRefresh {
        token,
        session,
        user_active,
        rotated,
    } = found;
    if session.revoked_at.is_some() || token.expires_at <= now || session.expires_at <= now || !user_active {
        return Err(INVALID);
    }

    let rotated = match rotated {
        Some(rotated) => rotated,
        // Spend it and store its successor together; whoever spends it first wins.
        None if token.used_at.is_none() => {
            sessions::rotate_refresh(
                &core.db,
                core.sqlite_direct(),
                token.id,
                &session.id,
                &new_hash,
                now,
                expires_at,
            )
            .await?
        }
        None => false,
    };
    if rotated {
        return issue(core, session.user_id, session.id, new_token);
    }

    // Spent already: a concurrent refresh from the same client, or a replay.
    let spent_at = match token.used_at {
        Some(at) => at,
        None => sessions::find_refresh_by_id(&core.db, token.id)
            .await?
            .and_then(|t| t.used_at)
            .unwrap_or(now),
    };
    if now - spent_at > core.refresh_grace {
        sessions::revoke(&core.db, &session.id, now).await?;
        tracing::warn!(user_id = session.user_id, session_id = %session.id, "refresh token reuse; session revoked");
        return Err(ServiceError::Unauthenticated(
            "Refresh token was already used; the session has been revoked",
        ));
    }
    let txn = crate::store::begin(&core.db).await?;
    sessions::insert_refresh(&*txn, &session.id, new_hash, now, expires_at).await?;
    sessions::touch(&*txn, &session.id, now, expires_at).await?;
    txn.commit().await?;
    issue(core, session.user_id, session.id, new_token)
}

/// Ends the caller's current session: its access and refresh tokens stop working at once.
pub async fn logout(core: &Core, caller: &Caller) -> Result<(), ServiceError> {
    sessions::revoke(&core.db, &caller.session_id, core.clock.now()).await?;
    Ok(())
}

/// Ends every session of the caller, this one included. Answers how many ended.
pub async fn logout_all(core: &Core, caller: &Caller) -> Result<u64, ServiceError> {
    Ok(sessions::revoke_for_users(&core.db, &[caller.id()], None, core.clock.now()).await?)
}

/// The caller's live sessions, newest first.
pub async fn list_sessions(core: &Core, caller: &Caller) -> Result<Vec<Session>, ServiceError> {
    Ok(sessions::live_for_user(&core.db, caller.id(), core.clock.now()).await?)
}

/// Ends one of the caller's own sessions.
pub async fn end_session(core: &Core, caller: &Caller, session_id: &str) -> Result<(), ServiceError> {
    match sessions::find(&core.db, session_id).await? {
        Some(session) if session.user_id == caller.id() => {
            sessions::revoke(&core.db, session_id, core.clock.now()).await?;
            Ok(())
        }
        _ => Err(ServiceError::NotFound("Session")),
    }
}

/// Resolves a bearer token to its caller: a valid signature is not enough, the session must be
/// live and the user active, checked against the database in one query.
pub async fn authenticate(core: &Core, token: &str) -> Result<Caller, ServiceError> {
    const INVALID: ServiceError = ServiceError::Unauthenticated("Could not validate credentials");
    let now = core.clock.now();
    let claims = core.tokens.verify(token, now).map_err(|_| INVALID)?;
    let Some(grant) =
        store::sessions::find_with_user_and_grants(&core.db, core.direct.as_ref(), &claims.sid, now).await?
    else {
        return Err(INVALID);
    };
    let live = grant.revoked_at.is_none() && grant.expires_at > now;
    let user = &grant.grant.user;
    if Some(user.id) != claims.user_id() || !live || !user.is_active {
        return Err(INVALID);
    }
    Ok(Caller::new(grant.grant, claims.sid.clone()).confirmed_at(grant.confirmed))
}
