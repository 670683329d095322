//! Pure types and rules. Nothing here knows about HTTP or SQL.
//!
//! Values from clients are parsed into these types at the edge, so an `Email` or a `Password`
//! that exists anywhere in the program has already passed its rules.

mod email;
mod errors;
mod password;
pub mod profile;
pub mod rbac;
pub mod throttle;
mod username;

pub use email::Email;
pub use errors::{FieldError, FieldErrors};
pub use password::{MAX_PASSWORD_LENGTH, Password, PasswordPolicy, SecretString};
pub use username::Username;

/// Cleans an optional display name: trims it, turns blank into `None`, bounds the length.
pub fn parse_full_name(raw: &str) -> Result<Option<String>, FieldError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.chars().count() > 255 {
        return Err(FieldError::new(
            "String should have at most 255 characters",
            "string_too_long",
        ));
    }
    no_control_characters(trimmed)?;
    Ok(Some(trimmed.to_owned()))
}

/// Refuses text with a control character: none can be part of a stored name, email or
/// username, and PostgreSQL cannot hold a NUL in text at all.
pub fn no_control_characters(text: &str) -> Result<(), FieldError> {
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(
            "Must not contain control characters",
            "value_error",
        ));
    }
    Ok(())
}
