//! Table definitions. Entities never leave the service layer as JSON: the HTTP layer maps
//! them to response types that leave out secrets such as `password_hash`.

pub mod login_throttle;
pub mod permission;
pub mod refresh_token;
pub mod role;
pub mod role_permission;
pub mod session;
pub mod user;
pub mod user_role;
