//! The native API (FastAPI generation): `/auth`, `/users`, `/profile`, `/rbac`, health and service
//! information.

pub mod auth;
pub mod health;
mod parse;
pub use parse::page as parse_page;
pub mod profile;
pub mod rbac;
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
        .routes(routes!(auth::me))
        .routes(routes!(auth::test_token))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::logout_all))
        .routes(routes!(auth::sessions))
        .routes(routes!(auth::end_session))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::get_me, users::update_me))
        .routes(routes!(users::get_user, users::update_user, users::delete_user))
        .routes(routes!(users::activate))
        .routes(routes!(users::deactivate))
        .routes(routes!(users::make_admin))
        .routes(routes!(users::remove_admin))
        .routes(routes!(users::bulk_activate))
        .routes(routes!(users::bulk_deactivate))
        .routes(routes!(users::bulk_delete))
        .routes(routes!(
            profile::get_profile,
            profile::create_profile,
            profile::update_profile,
            profile::clear_profile
        ))
        .routes(routes!(profile::get_profile_me, profile::update_profile_me))
        .routes(routes!(profile::get_preferences, profile::update_preferences))
        .routes(routes!(
            profile::get_preferences_me,
            profile::update_preferences_me
        ))
        .routes(routes!(profile::remove_avatar))
        .routes(routes!(profile::remove_avatar_me))
        .routes(routes!(profile::public_profile))
        .routes(routes!(rbac::create_permission, rbac::list_permissions))
        .routes(routes!(
            rbac::get_permission,
            rbac::update_permission,
            rbac::delete_permission
        ))
        .routes(routes!(rbac::create_role, rbac::list_roles))
        .routes(routes!(rbac::get_role, rbac::update_role, rbac::delete_role))
        .routes(routes!(rbac::assign_roles, rbac::user_roles))
        .routes(routes!(rbac::remove_user_role))
        .routes(routes!(rbac::users_with_roles))
        .routes(routes!(rbac::check_permission))
        .routes(routes!(rbac::my_permissions))
}

/// The routes that take credentials (register, login, refresh); the request-rate shield goes
/// in front of them.
pub fn credential_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
}
