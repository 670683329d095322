use super::FieldError;

/// 3–64 characters of ASCII letters, digits, `.`, `_` and `-`. Compared case-insensitively.
///
/// ASCII only on purpose: look-alike Unicode letters would let two names that read the same
/// both be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        let len = trimmed.chars().count();
        if len < 3 {
            return Err(FieldError::new(
                "String should have at least 3 characters",
                "string_too_short",
            ));
        }
        if len > 64 {
            return Err(FieldError::new(
                "String should have at most 64 characters",
                "string_too_long",
            ));
        }
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(FieldError::new(
                "Username may contain only letters, digits, '.', '_' and '-'",
                "value_error",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn normalized(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        assert_eq!(
            Username::parse("Alice.B_c-1").unwrap().normalized(),
            "alice.b_c-1"
        );
    }

    #[test]
    fn rejects_short_long_and_foreign_characters() {
        for bad in ["ab", "", "alice smith", "al@ce", "ålice", &"a".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
