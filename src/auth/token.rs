//! Access tokens: short-lived HS256 JWTs that name a user and a session.
//!
//! The signature and claims are checked here; whether the session is still alive and the user
//! still active is checked against the database by the caller, on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::domain::SecretString;

pub const ACCESS_TOKEN_TYPE: &str = "access";

/// How many verified access tokens a service remembers: about 2 MiB when full.
const REMEMBERED: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user id, as a string (RFC 7519 wants `sub` to be a string).
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// The session this token belongs to.
    pub sid: String,
    #[serde(rename = "type")]
    pub token_type: String,
}

impl AccessClaims {
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is malformed or its signature is invalid")]
    Invalid,
    #[error("token has expired")]
    Expired,
    #[error("token is not an access token")]
    WrongType,
}

#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: TimeDelta,
    /// Tokens whose signature and claims have checked out, by the whole token (decision 89).
    /// A client sends the same access token with every request for its lifetime, and checking
    /// it again (an HMAC, two base64 decodes and two JSON parses) cost a tenth of a request's
    /// CPU. Only the outcome of that pure check is remembered: expiry is checked on every use,
    /// and whether the session and user are still good is asked of the database as before.
    verified: Arc<Mutex<HashMap<Box<str>, Arc<AccessClaims>>>>,
}

impl TokenService {
    pub fn new(secret: &SecretString, access_ttl: TimeDelta) -> Self {
        let key = secret.expose().as_bytes();
        // Only HS256 is accepted: `alg: none` and algorithm-confusion tokens fail here.
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked against our own clock below, so tests can move time.
        validation.validate_exp = false;
        validation.required_spec_claims = ["exp", "iat", "sub"].into_iter().map(String::from).collect();
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            access_ttl,
            verified: Arc::default(),
        }
    }

    pub fn access_ttl(&self) -> TimeDelta {
        self.access_ttl
    }

    /// Issues an access token for `user_id` in session `sid`, valid from `now`.
    pub fn issue(&self, user_id: i64, sid: &str, now: DateTime<Utc>) -> anyhow::Result<String> {
        let claims = AccessClaims {
            sub: user_id.to_string(),
            iat: now.timestamp(),
            exp: (now + self.access_ttl).timestamp(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            sid: sid.to_owned(),
            token_type: ACCESS_TOKEN_TYPE.to_owned(),
        };
        Ok(encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// Checks signature, algorithm, type and expiry.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Arc<AccessClaims>, TokenError> {
        if let Some(claims) = self.remembered(token) {
            return if claims.exp <= now.timestamp() {
                Err(TokenError::Expired)
            } else {
                Ok(claims)
            };
        }
        let data = decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        if claims.token_type != ACCESS_TOKEN_TYPE {
            return Err(TokenError::WrongType);
        }
        if claims.exp <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        if claims.user_id().is_none() {
            return Err(TokenError::Invalid);
        }
        let claims = Arc::new(claims);
        self.remember(token, &claims, now);
        Ok(claims)
    }

    fn remembered(&self, token: &str) -> Option<Arc<AccessClaims>> {
        self.verified().get(token).cloned()
    }

    /// Remembers a verified token; when full, forgets the expired ones, or all if none has.
    fn remember(&self, token: &str, claims: &Arc<AccessClaims>, now: DateTime<Utc>) {
        let mut verified = self.verified();
        if verified.len() >= REMEMBERED {
            verified.retain(|_, claims| claims.exp > now.timestamp());
            if verified.len() >= REMEMBERED {
                verified.clear();
            }
        }
        verified.insert(token.into(), Arc::clone(claims));
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<AccessClaims>>> {
        self.verified.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A new opaque refresh token (256 random bits, base64url) and the hash that is stored.
pub fn new_refresh_token() -> (String, String) {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

/// SHA-256 of a refresh token, hex. Refresh tokens are long random values, so a fast hash is
/// enough: there is nothing to brute-force.
pub fn hash_refresh_token(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn service() -> TokenService {
        TokenService::new(
            &SecretString::new("a-test-secret-that-is-long-enough-0123456789"),
            TimeDelta::minutes(15),
        )
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_contract_claims() {
        let svc = service();
        let now = Utc::now();
        let token = svc.issue(42, "sess1", now).unwrap();
        let claims = svc.verify(&token, now).unwrap();
        assert_eq!(claims.sub, "42");
        assert_eq!(claims.sid, "sess1");
        assert_eq!(claims.token_type, "access");
        assert_eq!(claims.exp - claims.iat, 15 * 60);
        assert!(!claims.jti.is_empty());
    }

    #[test]
    fn expired_tokens_are_rejected_by_the_injected_time() {
        let svc = service();
        let now = Utc::now();
        let token = svc.issue(1, "s", now).unwrap();
        assert_eq!(
            svc.verify(&token, now + TimeDelta::minutes(15)),
            Err(TokenError::Expired)
        );
        assert!(svc.verify(&token, now + TimeDelta::minutes(14)).is_ok());
    }

    #[test]
    fn wrong_signature_and_alg_none_are_rejected() {
        let svc = service();
        let now = Utc::now();
        let other = TokenService::new(
            &SecretString::new("another-secret-another-secret-xx"),
            TimeDelta::minutes(15),
        );
        let forged = other.issue(1, "s", now).unwrap();
        assert_eq!(svc.verify(&forged, now), Err(TokenError::Invalid));

        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = b64.encode(
            format!(
                r#"{{"sub":"1","exp":{},"iat":{},"jti":"x","sid":"s","type":"access"}}"#,
                now.timestamp() + 600,
                now.timestamp()
            )
            .as_bytes(),
        );
        assert_eq!(
            svc.verify(&format!("{header}.{body}."), now),
            Err(TokenError::Invalid)
        );
        assert_eq!(svc.verify("garbage", now), Err(TokenError::Invalid));
    }

    #[test]
    fn a_remembered_token_still_expires_and_only_the_same_token_is_remembered() {
        let svc = service();
        let now = Utc::now();
        let token = svc.issue(7, "s7", now).unwrap();
        assert_eq!(svc.verify(&token, now).unwrap().sid, "s7");
        assert_eq!(svc.verified().len(), 1, "the token was not remembered");
        // The same token again: served from memory, and its expiry still holds.
        assert_eq!(svc.verify(&token, now + TimeDelta::minutes(14)).unwrap().sub, "7");
        assert_eq!(
            svc.verify(&token, now + TimeDelta::minutes(15)),
            Err(TokenError::Expired)
        );
        // One character of the signature changed: checked in full, and refused.
        let at = token.len() - 10;
        let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
        let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
        assert_eq!(svc.verify(&tampered, now), Err(TokenError::Invalid));
        // Another service, with another key, remembers nothing of this one's tokens.
        let other = TokenService::new(
            &SecretString::new("another-secret-another-secret-xx"),
            TimeDelta::minutes(15),
        );
        assert_eq!(other.verify(&token, now), Err(TokenError::Invalid));
    }

    #[test]
    fn a_full_memory_of_tokens_forgets_the_expired_first() {
        let svc = service();
        let now = Utc::now();
        let old = svc.issue(1, "old", now - TimeDelta::minutes(10)).unwrap();
        svc.verify(&old, now - TimeDelta::minutes(10)).unwrap();
        for n in 1..REMEMBERED {
            let token = svc.issue(2, &format!("s{n}"), now).unwrap();
            svc.verify(&token, now).unwrap();
        }
        assert_eq!(svc.verified().len(), REMEMBERED);
        // Full: the next one makes room by forgetting the token that has expired by then.
        let later = now + TimeDelta::minutes(6);
        let token = svc.issue(3, "new", later).unwrap();
        svc.verify(&token, later).unwrap();
        assert_eq!(svc.verified().len(), REMEMBERED);
        assert!(!svc.verified().contains_key(old.as_str()));
        assert!(svc.verified().contains_key(token.as_str()));
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_only_as_hashes() {
        let (a, hash_a) = new_refresh_token();
        let (b, _) = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_a, hash_refresh_token(&a));
        assert_eq!(hash_a.len(), 64);
        assert!(!hash_a.contains(&a));
    }
}
