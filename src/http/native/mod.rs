//! The native API (FastAPI generation): `/auth`, `/users`, health and service information.

pub mod auth;
pub mod health;
mod parse;
pub mod schemas;
pub mod users;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::root))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::me))
        .routes(routes!(auth::test_token))
        .routes(routes!(users::list_users))
        .routes(routes!(users::get_me, users::update_me))
        .routes(routes!(users::get_user, users::update_user, users::delete_user))
}
