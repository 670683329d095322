use super::FieldError;

/// A syntactically valid email address, trimmed. Compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        if trimmed.len() > 254 {
            return Err(FieldError::new(
                "value is not a valid email address: it is longer than 254 characters",
                "value_error",
            ));
        }
        match email_address::EmailAddress::parse_with_options(
            trimmed,
            email_address::Options::default()
                .without_display_text()
                .without_domain_literal(),
        ) {
            // A domain without a dot (`user@localhost`) is legal but never what a user meant.
            Ok(parsed) if parsed.domain().contains('.') => Ok(Self(trimmed.to_owned())),
            _ => Err(FieldError::new(
                "value is not a valid email address",
                "value_error",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is enforced on.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_trims() {
        let e = Email::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Alice@Example.COM");
        assert_eq!(e.normalized(), "alice@example.com");
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a b@example.com",
            "alice@localhost",
            "Alice <alice@example.com>",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }
}
