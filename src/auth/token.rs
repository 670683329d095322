//! Access tokens: short-lived HS256 JWTs that name a user and a session.
//!
//! The signature and claims are checked here; whether the session is still alive and the user
//! still active is checked against the database by the caller, on every request.

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::domain::SecretString;

pub const ACCESS_TOKEN_TYPE: &str = "access";

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
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenError> {
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
        Ok(claims)
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
