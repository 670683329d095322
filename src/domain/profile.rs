//! Profile fields and preferences: what a valid value looks like.

use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::{FieldError, FieldErrors};

pub const MAX_BIO_CHARS: usize = 2000;
pub const MAX_URL_CHARS: usize = 500;
pub const MAX_PHONE_CHARS: usize = 20;
pub const MAX_LOCATION_CHARS: usize = 255;
/// The serialized preferences object may not exceed this many bytes.
pub const MAX_PREFERENCES_BYTES: usize = 16 * 1024;

/// An absolute `http` or `https` URL of at most 500 characters.
pub fn parse_url(raw: &str) -> Result<String, FieldError> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > MAX_URL_CHARS {
        return Err(FieldError::new(
            format!("URL should have at most {MAX_URL_CHARS} characters"),
            "string_too_long",
        ));
    }
    match url::Url::parse(trimmed) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(trimmed.to_owned())
        }
        _ => Err(FieldError::new(
            "Input should be a valid http or https URL",
            "url_parsing",
        )),
    }
}

/// Digits with an optional leading `+`, and spaces, dashes, dots or parentheses between them;
/// at most 20 characters (`+1-555-0123`, `(030) 1234 5678`).
pub fn parse_phone(raw: &str) -> Result<String, FieldError> {
    let trimmed = raw.trim();
    let invalid = || {
        FieldError::new(
            "Phone number may contain digits, a leading '+', and spaces, dashes, dots or parentheses",
            "value_error",
        )
    };
    if trimmed.chars().count() > MAX_PHONE_CHARS {
        return Err(FieldError::new(
            format!("String should have at most {MAX_PHONE_CHARS} characters"),
            "string_too_long",
        ));
    }
    let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let allowed = body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'));
    let digits = body.chars().filter(char::is_ascii_digit).count();
    let ends_well = body.ends_with(|c: char| c.is_ascii_digit())
        && body.starts_with(|c: char| c.is_ascii_digit() || c == '(');
    if !allowed || digits < 3 || !ends_well {
        return Err(invalid());
    }
    Ok(trimmed.to_owned())
}

/// A calendar date (`YYYY-MM-DD`) before `today` and not before 1900.
pub fn parse_birth_date(raw: &str, today: NaiveDate) -> Result<NaiveDate, FieldError> {
    let date = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| FieldError::new("Input should be a valid date (YYYY-MM-DD)", "date_parsing"))?;
    if date >= today {
        return Err(FieldError::new("Birth date must be in the past", "date_past"));
    }
    if date < NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN) {
        return Err(FieldError::new(
            "Birth date must be after 1900-01-01",
            "value_error",
        ));
    }
    Ok(date)
}

/// Free text of at most `max` characters; blank becomes `None`. Line breaks and tabs are
/// text; other control characters are not (and PostgreSQL cannot store a NUL in text).
pub fn parse_text(raw: &str, max: usize) -> Result<Option<String>, FieldError> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > max {
        return Err(FieldError::new(
            format!("String should have at most {max} characters"),
            "string_too_long",
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(FieldError::new(
            "Must not contain control characters other than line breaks and tabs",
            "value_error",
        ));
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

/// Checks one known preference key. Unknown keys are kept as they are.
fn check_preference(key: &str, value: &Value) -> Result<(), FieldError> {
    let want_bool = || FieldError::new("Input should be a valid boolean", "bool_type");
    match key {
        "theme" => match value.as_str() {
            Some("light" | "dark" | "system") => Ok(()),
            _ => Err(FieldError::new(
                "Input should be 'light', 'dark' or 'system'",
                "enum",
            )),
        },
        "language" => match value.as_str() {
            Some(tag) if icu_locale_core::LanguageIdentifier::try_from_str(tag).is_ok() => Ok(()),
            _ => Err(FieldError::new(
                "Input should be a BCP 47 language tag such as 'en' or 'pt-BR'",
                "value_error",
            )),
        },
        "timezone" => match value.as_str().map(str::parse::<chrono_tz::Tz>) {
            Some(Ok(_)) => Ok(()),
            _ => Err(FieldError::new(
                "Input should be an IANA time zone such as 'Europe/Berlin'",
                "value_error",
            )),
        },
        "notifications_email" | "notifications_sms" | "privacy_public_profile" => {
            value.is_boolean().then_some(()).ok_or_else(want_bool)
        }
        _ => Ok(()),
    }
}

/// Applies a JSON merge patch (RFC 7396: `null` removes a key) to `current`, checking every
/// known key the patch sets and the size of the result.
pub fn merge_preferences(
    mut current: Map<String, Value>,
    patch: Map<String, Value>,
) -> Result<Map<String, Value>, FieldErrors> {
    let mut errors = FieldErrors::new();
    for (key, value) in patch {
        if value.is_null() {
            current.remove(&key);
            continue;
        }
        if let Err(err) = check_preference(&key, &value) {
            errors.push(&key, err);
            continue;
        }
        current.insert(key, value);
    }
    if errors.is_empty() && serialized_len(&current) > MAX_PREFERENCES_BYTES {
        errors.0.push(FieldError::new(
            format!("Preferences may not exceed {MAX_PREFERENCES_BYTES} bytes"),
            "too_large",
        ));
    }
    errors.finish().map(|()| current)
}

fn serialized_len(map: &Map<String, Value>) -> usize {
    serde_json::to_vec(map).map_or(usize::MAX, |v| v.len())
}

/// Whether the user chose to show their profile to everyone.
pub fn is_public(preferences: &Map<String, Value>) -> bool {
    preferences.get("privacy_public_profile").and_then(Value::as_bool) == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn free_text_keeps_line_breaks_and_refuses_other_control_characters() {
        assert_eq!(
            parse_text(" two\nlines\tand a tab ", 100).unwrap().as_deref(),
            Some("two\nlines\tand a tab")
        );
        for bad in ["nul\0here", "bell\u{7}", "escape\u{1b}[31m"] {
            assert!(parse_text(bad, 100).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_must_be_http_or_https() {
        assert!(parse_url("https://alice-dev.com").is_ok());
        assert!(parse_url("http://example.com/a?b=c").is_ok());
        for bad in [
            "javascript:alert(1)",
            "ftp://x.com",
            "alice-dev.com",
            "https://",
            "",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url(&format!("https://x.com/{}", "a".repeat(500))).is_err());
    }

    #[test]
    fn phone_numbers_follow_the_seed_examples() {
        for ok in ["+1-555-0123", "(030) 1234 5678", "555.0123", "+44 20 7946 0958"] {
            assert!(parse_phone(ok).is_ok(), "{ok}");
        }
        for bad in [
            "call me",
            "+",
            "12",
            "+1-555-0123-4567-8901",
            "555-",
            "++1 555",
            "1#2#3",
        ] {
            assert!(parse_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn birth_dates_are_in_the_past() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        assert!(parse_birth_date("1990-05-15", today).is_ok());
        assert!(parse_birth_date("2026-11-23", today).is_err());
        assert!(parse_birth_date("2030-01-01", today).is_err());
        assert!(parse_birth_date("1990-13-01", today).is_err());
        assert!(parse_birth_date("1850-01-01", today).is_err());
    }

    #[test]
    fn preferences_merge_with_typed_known_keys() {
        let current = json!({"theme": "light", "custom": 1})
            .as_object()
            .cloned()
            .unwrap();
        let patch = json!({
            "theme": "dark", "language": "pt-BR", "timezone": "America/Los_Angeles",
            "notifications_email": true, "custom": null, "notifications": true
        });
        let merged = merge_preferences(current, patch.as_object().cloned().unwrap()).unwrap();
        assert_eq!(
            Value::Object(merged),
            json!({"theme": "dark", "language": "pt-BR", "timezone": "America/Los_Angeles",
                   "notifications_email": true, "notifications": true})
        );
    }

    #[test]
    fn bad_preferences_name_every_key() {
        let patch = json!({"theme": "blue", "language": "not a tag!", "timezone": "Mars/Olympus",
                           "notifications_sms": "yes", "privacy_public_profile": 1});
        let errors = merge_preferences(Map::new(), patch.as_object().cloned().unwrap()).unwrap_err();
        let mut keys: Vec<String> = errors.0.iter().map(|e| e.loc.join(".")).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "language",
                "notifications_sms",
                "privacy_public_profile",
                "theme",
                "timezone"
            ]
        );
    }

    #[test]
    fn preferences_are_bounded_in_size() {
        let patch = json!({"blob": "x".repeat(MAX_PREFERENCES_BYTES)});
        assert!(merge_preferences(Map::new(), patch.as_object().cloned().unwrap()).is_err());
    }
}
