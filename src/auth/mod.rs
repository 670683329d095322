//! Credentials: password hashing and access tokens.

pub mod legacy;
pub mod password;
pub mod token;

pub use password::PasswordHasher;
pub use token::{AccessClaims, TokenError, TokenService, hash_refresh_token, new_refresh_token};
