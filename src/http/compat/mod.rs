//! The Flask-generation API under `/api` (seeds 000–002, UserVault): the seeds' exact paths,
//! bodies and error shapes, as thin adapters over the same services and authorization policy
//! as the native API. Users and tokens are shared between the two surfaces.

mod error;
pub mod handlers;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
pub use error::CompatError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::test))
        .routes(routes!(handlers::list_users))
        .routes(routes!(
            handlers::get_user,
            handlers::update_user,
            handlers::delete_user
        ))
        .routes(routes!(handlers::protected))
}

/// The routes that take credentials (register, create, login); the shield limits their POSTs.
pub fn credential_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::register))
        .routes(routes!(handlers::login))
        .routes(routes!(handlers::create_user))
}

/// Whether a request path belongs to this surface (for its own 404 and 405 bodies).
pub fn owns(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}
