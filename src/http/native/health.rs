use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::schemas::{ServiceInfo, Status};
use crate::http::AppState;
use crate::http::error::ErrorBody;

/// Service name, version and where the documentation is.
#[utoipa::path(get, path = "/", tag = "health", responses((status = 200, body = ServiceInfo)))]
pub async fn root() -> Json<ServiceInfo> {
    Json(ServiceInfo {
        name: "users-api",
        version: env!("CARGO_PKG_VERSION"),
        docs: "/docs",
        redoc: "/redoc",
        openapi: "/openapi.json",
    })
}

/// Liveness: answers without touching the database.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: the service is not shutting down and the database answers `SELECT 1`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, body = Status, example = json!({"status": "ready"})),
        (status = 503, body = ErrorBody, description = "`db not ready`, or `shutting down` once a stop signal arrived", example = json!({"detail": "db not ready"})),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.shutdown().has_begun() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ErrorBody {
                detail: "shutting down".into(),
            }),
        )
            .into_response();
    }
    match crate::store::ping(&state.core.db).await {
        Ok(()) => Json(Status { status: "ready" }).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(ErrorBody {
                    detail: "db not ready".into(),
                }),
            )
                .into_response()
        }
    }
}
