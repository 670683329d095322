//! The OpenAPI document, Swagger UI at `/docs` and a reference page at `/redoc`, all served
//! from the binary with no CDN.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use utoipa::Modify;
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "users-api",
        description = "User management: accounts, sessions, administration, profiles and RBAC.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness, readiness and service information"),
        (name = "auth", description = "Registration, login and tokens"),
        (name = "users", description = "Reading and managing users"),
        (name = "profile", description = "Your profile and preferences, and public profiles"),
        (name = "rbac", description = "Roles, permissions and assignments"),
        (name = "compat", description = "The Flask generation's API (UserVault), served unchanged under /api"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from POST /auth/login"))
                    .build(),
            ),
        );
    }
}

/// Merges the routes' paths into the document's header, tags and security schemes.
pub fn finish(paths: OpenApi) -> OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.merge(paths);
    doc
}

/// The document served at `/openapi.json`, as pretty JSON (for the `openapi` command).
pub fn spec_json() -> String {
    let (_, api) = super::api_routes(None).split_for_parts();
    finish(api).to_pretty_json().unwrap_or_default()
}

pub fn docs_router(api: OpenApi) -> Router<AppState> {
    Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .route("/redoc", get(|| async { Html(REFERENCE_PAGE) }))
        .route(
            "/redoc/reference.js",
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    REFERENCE_SCRIPT,
                )
            }),
        )
        .layer(super::headers::docs_policy())
}

/// A self-contained API reference: it reads `/openapi.json` and lists every operation with its
/// parameters, bodies and responses. No external scripts, so it works offline.
const REFERENCE_PAGE: &str = include_str!("reference.html");
/// Its script, served separately so the page's Content-Security-Policy needs no inline code.
const REFERENCE_SCRIPT: &str = include_str!("reference.js");
