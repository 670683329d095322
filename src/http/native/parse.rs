//! Turning native request bodies into domain values, collecting every field error at once.

use chrono::NaiveDate;

use super::schemas::{ProfileRequest, RegisterRequest, UpdateMeRequest, UpdateUserRequest};
use crate::domain::profile::{
    MAX_BIO_CHARS, MAX_LOCATION_CHARS, parse_birth_date, parse_phone, parse_text, parse_url,
};
use crate::domain::{Email, FieldError, FieldErrors, Password, PasswordPolicy, Username, parse_full_name};
use crate::http::error::ApiError;
use crate::services::accounts::NewAccount;
use crate::services::profiles::ProfileChanges;
use crate::services::users::UserChanges;

pub fn registration(req: RegisterRequest, policy: &PasswordPolicy) -> Result<NewAccount, ApiError> {
    let mut errors = FieldErrors::new();
    let email = errors
        .required("email", req.email)
        .and_then(|e| errors.check("email", Email::parse(&e)));
    let username = req
        .username
        .filter(|u| !u.trim().is_empty())
        .and_then(|u| errors.check("username", Username::parse(&u)));
    let full_name = req
        .full_name
        .and_then(|n| errors.check("full_name", parse_full_name(&n)))
        .flatten();
    let identities = [
        email.as_ref().map_or("", Email::as_str),
        username.as_ref().map_or("", Username::as_str),
    ];
    let password = errors
        .required("password", req.password)
        .and_then(|p| errors.check("password", Password::parse(&p, policy, &identities)));
    match (email, password) {
        (Some(email), Some(password)) if errors.is_empty() => Ok(NewAccount {
            email,
            username,
            full_name,
            password,
        }),
        _ => Err(ApiError::body(errors)),
    }
}

pub fn own_changes(req: UpdateMeRequest, policy: &PasswordPolicy) -> Result<UserChanges, ApiError> {
    let mut errors = FieldErrors::new();
    let changes = collect_own(req, policy, &mut errors);
    errors.finish().map_err(ApiError::body)?;
    Ok(changes)
}

pub fn user_changes(req: UpdateUserRequest, policy: &PasswordPolicy) -> Result<UserChanges, ApiError> {
    let mut errors = FieldErrors::new();
    let mut changes = collect_own(req.own, policy, &mut errors);
    errors.finish().map_err(ApiError::body)?;
    changes.is_active = req.is_active;
    changes.is_admin = req.is_admin;
    Ok(changes)
}

fn collect_own(req: UpdateMeRequest, policy: &PasswordPolicy, errors: &mut FieldErrors) -> UserChanges {
    let email = req.email.and_then(|e| errors.check("email", Email::parse(&e)));
    let username = req.username.map(|u| {
        u.filter(|u| !u.trim().is_empty())
            .and_then(|u| errors.check("username", Username::parse(&u)))
    });
    let full_name = req
        .full_name
        .map(|n| n.and_then(|n| errors.check("full_name", parse_full_name(&n)).flatten()));
    let identities = [
        email.as_ref().map_or("", Email::as_str),
        username
            .as_ref()
            .and_then(Option::as_ref)
            .map_or("", Username::as_str),
    ];
    let password = req
        .password
        .and_then(|p| errors.check("password", Password::parse(&p, policy, &identities)));
    UserChanges {
        email,
        username,
        full_name,
        password,
        current_password: req.current_password,
        require_current_password: true,
        is_active: None,
        is_admin: None,
    }
}

/// Parses profile fields; `today` bounds the birth date.
pub fn profile_changes(req: ProfileRequest, today: NaiveDate) -> Result<ProfileChanges, ApiError> {
    let mut errors = FieldErrors::new();
    let mut field = |name: &str,
                     value: Option<Option<String>>,
                     parse: &dyn Fn(&str) -> Result<Option<String>, FieldError>| {
        value.map(|v| v.and_then(|raw| errors.check(name, parse(&raw)).flatten()))
    };
    let bio = field("bio", req.bio, &|raw| parse_text(raw, MAX_BIO_CHARS));
    let location = field("location", req.location, &|raw| {
        parse_text(raw, MAX_LOCATION_CHARS)
    });
    let avatar_url = field("avatar_url", req.avatar_url, &|raw| blank_or(raw, parse_url));
    let website = field("website", req.website, &|raw| blank_or(raw, parse_url));
    let phone_number = field("phone_number", req.phone_number, &|raw| {
        blank_or(raw, parse_phone)
    });
    let birth_date = req.birth_date.map(|v| {
        v.filter(|raw| !raw.trim().is_empty())
            .and_then(|raw| errors.check("birth_date", parse_birth_date(&raw, today)))
    });
    errors.finish().map_err(ApiError::body)?;
    Ok(ProfileChanges {
        bio,
        avatar_url,
        location,
        website,
        phone_number,
        birth_date,
    })
}

/// An empty string clears a field instead of failing its format.
fn blank_or(raw: &str, parse: fn(&str) -> Result<String, FieldError>) -> Result<Option<String>, FieldError> {
    if raw.trim().is_empty() {
        Ok(None)
    } else {
        parse(raw).map(Some)
    }
}

/// An optional description: at most 1000 characters, blank becomes `None`.
pub fn description(raw: &str) -> Result<Option<String>, FieldError> {
    parse_text(raw, 1000)
}

/// `skip` (≥ 0, default 0) and `limit` (1–1000, default 100) of a list.
pub fn page(skip: Option<i64>, limit: Option<i64>) -> Result<(u64, u64), ApiError> {
    let mut errors = FieldErrors::new();
    let skip = skip.unwrap_or(0);
    if skip < 0 {
        errors.push(
            "skip",
            FieldError::new("Input should be greater than or equal to 0", "greater_than_equal"),
        );
    }
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        errors.push(
            "limit",
            FieldError::new("Input should be between 1 and 1000", "range"),
        );
    }
    errors.finish().map_err(ApiError::query)?;
    Ok((skip.unsigned_abs(), limit.unsigned_abs()))
}
