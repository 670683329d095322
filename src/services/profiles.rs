//! Profile fields and preferences of the caller, and other users' public profiles.

use chrono::NaiveDate;
use sea_orm::ActiveValue::Set;
use serde_json::{Map, Value};

use super::{Caller, Core, Permission, ServiceError};
use crate::domain::profile::{is_public, merge_preferences};
use crate::store::entities::user::Model as User;
use crate::store::users;

/// Changes to profile fields. `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ProfileChanges {
    pub bio: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub location: Option<Option<String>>,
    pub website: Option<Option<String>>,
    pub phone_number: Option<Option<String>>,
    pub birth_date: Option<Option<NaiveDate>>,
}

impl ProfileChanges {
    /// Changes that clear every profile field.
    pub fn clear_all() -> Self {
        Self {
            bio: Some(None),
            avatar_url: Some(None),
            location: Some(None),
            website: Some(None),
            phone_number: Some(None),
            birth_date: Some(None),
        }
    }
}

/// The caller's preferences as a JSON object (empty when none are set).
pub fn preferences_of(user: &User) -> Map<String, Value> {
    user.preferences
        .as_deref()
        .and_then(|text| serde_json::from_str::<Map<String, Value>>(text).ok())
        .unwrap_or_default()
}

/// The caller as stored now (the copy resolved at authentication may be a request old).
async fn reload(core: &Core, caller: &Caller) -> Result<User, ServiceError> {
    users::find(&core.db, caller.id())
        .await?
        .ok_or(ServiceError::NotFound("User"))
}

pub async fn own(core: &Core, caller: &Caller) -> Result<User, ServiceError> {
    reload(core, caller).await
}

pub async fn update_own(core: &Core, caller: &Caller, changes: ProfileChanges) -> Result<User, ServiceError> {
    let user = reload(core, caller).await?;
    let mut row = users::edit(user);
    if let Some(v) = changes.bio {
        row.bio = Set(v);
    }
    if let Some(v) = changes.avatar_url {
        row.avatar_url = Set(v);
    }
    if let Some(v) = changes.location {
        row.location = Set(v);
    }
    if let Some(v) = changes.website {
        row.website = Set(v);
    }
    if let Some(v) = changes.phone_number {
        row.phone_number = Set(v);
    }
    if let Some(v) = changes.birth_date {
        row.birth_date = Set(v);
    }
    Ok(users::update(&core.db, row, core.clock.now()).await?)
}

/// Clears every profile field and the preferences.
pub async fn clear_own(core: &Core, caller: &Caller) -> Result<User, ServiceError> {
    let user = update_own(core, caller, ProfileChanges::clear_all()).await?;
    let mut row = users::edit(user);
    row.preferences = Set(None);
    Ok(users::update(&core.db, row, core.clock.now()).await?)
}

/// Merges `patch` into the caller's preferences (`null` removes a key) and answers the result.
pub async fn merge_own_preferences(
    core: &Core,
    caller: &Caller,
    patch: Map<String, Value>,
) -> Result<Map<String, Value>, ServiceError> {
    let user = reload(core, caller).await?;
    let merged = merge_preferences(preferences_of(&user), patch).map_err(ServiceError::Validation)?;
    let text = serde_json::to_string(&merged).map_err(|e| ServiceError::Internal(e.into()))?;
    let mut row = users::edit(user);
    row.preferences = Set(Some(text));
    users::update(&core.db, row, core.clock.now()).await?;
    Ok(merged)
}

/// Another user's profile: visible when they made it public, to themselves, and to holders
/// of `user:read`. Otherwise it does not exist as far as the caller can tell.
pub async fn public(core: &Core, caller: &Caller, user_id: i64) -> Result<User, ServiceError> {
    let user = users::find(&core.db, user_id)
        .await?
        .ok_or(ServiceError::NotFound("Profile"))?;
    let visible = user.id == caller.id()
        || caller.has(Permission::UserRead)
        || (user.is_active && is_public(&preferences_of(&user)));
    if visible {
        Ok(user)
    } else {
        Err(ServiceError::NotFound("Profile"))
    }
}
