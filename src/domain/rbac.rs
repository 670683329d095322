//! Roles and permissions: the built-in catalogue and what a valid name looks like.

use super::FieldError;

/// `(name, resource, action, description)`
pub const BUILTIN_PERMISSIONS: &[(&str, &str, &str, &str)] = &[
    ("user:read", "user", "read", "Read any user"),
    (
        "user:write",
        "user",
        "write",
        "Create and change users, activate and deactivate them",
    ),
    ("user:delete", "user", "delete", "Delete users"),
    (
        "rbac:read",
        "rbac",
        "read",
        "Read roles, permissions and assignments",
    ),
    (
        "rbac:write",
        "rbac",
        "write",
        "Manage roles, permissions and assignments",
    ),
    ("admin:all", "admin", "all", "Everything"),
];

/// `(name, description, is_default, permission names)`
pub const BUILTIN_ROLES: &[(&str, &str, bool, &[&str])] = &[
    ("user", "Every user: self-service only", true, &[]),
    (
        "moderator",
        "Reads and manages users",
        false,
        &["user:read", "user:write"],
    ),
    ("admin", "Administrators: every permission", false, &["admin:all"]),
];

/// The permission that grants every other one, and the role that carries it.
pub const ADMIN_PERMISSION: &str = "admin:all";
pub const ADMIN_ROLE: &str = "admin";

/// A role or permission name: 1–`max` characters of letters, digits and `_ - . :`.
pub fn parse_name(raw: &str, max: usize) -> Result<String, FieldError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(
            "String should have at least 1 character",
            "string_too_short",
        ));
    }
    if trimmed.chars().count() > max {
        return Err(FieldError::new(
            format!("String should have at most {max} characters"),
            "string_too_long",
        ));
    }
    if !trimmed
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    {
        return Err(FieldError::new(
            "May contain only letters, digits, '_', '-', '.' and ':'",
            "value_error",
        ));
    }
    Ok(trimmed.to_owned())
}

/// A permission's resource or action: like a name, without `:` (it joins the two).
pub fn parse_part(raw: &str) -> Result<String, FieldError> {
    let part = parse_name(raw, 50)?;
    if part.contains(':') {
        return Err(FieldError::new("May not contain ':'", "value_error"));
    }
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_allow_the_seed_examples() {
        assert_eq!(parse_name(" manage_posts ", 100).unwrap(), "manage_posts");
        assert!(parse_name("user:read", 100).is_ok());
        assert!(parse_name("", 100).is_err());
        assert!(parse_name("has space", 100).is_err());
        assert!(parse_name(&"x".repeat(51), 50).is_err());
        assert!(parse_part("post").is_ok());
        assert!(parse_part("a:b").is_err());
    }

    #[test]
    fn builtin_roles_name_builtin_permissions() {
        for (_, _, _, perms) in BUILTIN_ROLES {
            for p in *perms {
                assert!(BUILTIN_PERMISSIONS.iter().any(|(name, ..)| name == p), "{p}");
            }
        }
    }
}
