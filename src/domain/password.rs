use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use super::FieldError;

/// A string that must never be printed: `Debug` and `Display` show a placeholder.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The rules a new password must meet.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    pub min_length: usize,
    /// Refuse the most common passwords (the shipped list).
    pub deny_common: bool,
}

/// The 3,000 most common passwords (lower case), shipped with the binary.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
});

/// Longer passwords are refused: Argon2 cost grows with input, and nobody types 129 characters.
pub const MAX_PASSWORD_LENGTH: usize = 128;

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            deny_common: true,
        }
    }
}

/// A new password that passed the policy. Only ever built by [`Password::parse`].
#[derive(Clone, Debug)]
pub struct Password(SecretString);

impl Password {
    /// Checks `raw` against `policy`; `identities` are the account's email and username, which
    /// the password may not equal.
    pub fn parse(
        raw: &SecretString,
        policy: &PasswordPolicy,
        identities: &[&str],
    ) -> Result<Self, FieldError> {
        let value = raw.expose();
        let len = value.chars().count();
        if len < policy.min_length {
            return Err(FieldError::new(
                format!("String should have at least {} characters", policy.min_length),
                "string_too_short",
            ));
        }
        if len > MAX_PASSWORD_LENGTH {
            return Err(FieldError::new(
                format!("String should have at most {MAX_PASSWORD_LENGTH} characters"),
                "string_too_long",
            ));
        }
        if policy.deny_common && COMMON.contains(value.to_lowercase().as_str()) {
            return Err(FieldError::new(
                "This password is one of the most common passwords; choose another",
                "password_common",
            ));
        }
        let password = Self(raw.clone());
        password.differs_from(identities)?;
        Ok(password)
    }

    /// The password may neither equal nor contain (ignoring case) the account's email or
    /// username.
    pub fn differs_from(&self, identities: &[&str]) -> Result<(), FieldError> {
        let lowered = self.0.expose().to_lowercase();
        if identities
            .iter()
            .any(|id| !id.is_empty() && lowered.contains(&id.to_lowercase()))
        {
            return Err(FieldError::new(
                "Password must not contain the email or username",
                "value_error",
            ));
        }
        Ok(())
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, ids: &[&str]) -> Result<Password, FieldError> {
        Password::parse(&SecretString::new(raw), &PasswordPolicy::default(), ids)
    }

    #[test]
    fn enforces_length_bounds() {
        assert!(parse("1234567", &[]).is_err());
        assert!(parse("1234567z", &[]).is_ok());
        assert!(parse(&"x".repeat(128), &[]).is_ok());
        assert!(parse(&"x".repeat(129), &[]).is_err());
    }

    #[test]
    fn refuses_the_email_or_username() {
        assert!(parse("Alice@Example.com", &["alice@example.com", ""]).is_err());
        assert!(parse("alice_the_great", &["a@b.co", "Alice_The_Great"]).is_err());
    }

    #[test]
    fn common_passwords_and_ones_containing_an_identity_are_refused() {
        assert!(parse("password", &[]).is_err());
        assert!(parse("Password", &[]).is_err(), "case does not matter");
        assert!(parse("qwertyuiop", &[]).is_err());
        assert!(parse("correct horse battery", &[]).is_ok());
        assert!(parse("my-alice_the_great-2", &["a@b.co", "alice_the_great"]).is_err());
        let lenient = PasswordPolicy {
            min_length: 8,
            deny_common: false,
        };
        assert!(Password::parse(&SecretString::new("password"), &lenient, &[]).is_ok());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = SecretString::new("hunter2hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        let p = parse("hunter2hunter2", &[]).unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
