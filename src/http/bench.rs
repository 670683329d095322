//! Routes that only `bench/run.sh` uses, compiled in with the `bench` cargo feature and absent
//! from every other build (`cargo build --release` has no such route), so they can never be
//! reached in production.
//!
//! * `GET /_bench/static` answers a fixed JSON body behind the same bearer-token check as the
//!   API (signature and expiry of the JWT) but without touching the database: the ceiling of
//!   what the HTTP stack, middleware and JWT verification can serve on this machine, against
//!   which the database-backed figures are read.
//! * `GET /_bench/argon2?n=N` times N Argon2id hashes at the configured parameters, three ways:
//!   one after the other as separate requests' hashes run when nothing else is queued
//!   (`hash_us`: each maps its own memory); back to back on one hashing thread while the others
//!   idle (`hash_reused_us`: in memory kept from one to the next); and back to back on every
//!   hashing thread at once, as a login flood runs them (`hash_all_threads_us`, N per thread).
//!   The last gives the hash-bound limit of login and register (cores ÷ time of one hash while
//!   every core hashes); the quicker of the first two gives a stricter one-core figure.
//! * `GET /_bench/argon2/rate?ms=N` has every hashing thread hash back to back for N
//!   milliseconds (100 to 20,000) and answers each thread's count and time, and their sum in
//!   hashes per second: the same limit as a rate over the window (decision 104).

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::extract::{Query, bearer_token};
use crate::domain::SecretString;

/// About the size of a user as `GET /users/{id}` answers it.
const STATIC_BODY: &str = r#"{"id":1,"email":"bench@example.com","username":"bench","full_name":"Bench User","is_active":true,"is_admin":false,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}"#;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/_bench/static", get(static_json))
        .route("/_bench/argon2", get(argon2))
        .route("/_bench/argon2/rate", get(argon2_rate))
}

async fn static_json(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let valid = bearer_token(&headers)
        .is_some_and(|token| state.core.tokens.verify(token, state.core.clock.now()).is_ok());
    if !valid {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    ([(header::CONTENT_TYPE, "application/json")], STATIC_BODY).into_response()
}

#[derive(serde::Deserialize)]
struct HashRuns {
    n: Option<u32>,
}

/// Hashes through the service's own hasher; answers each one's duration in microseconds,
/// sorted, for both ways of running them.
async fn argon2(State(state): State<AppState>, Query(runs): Query<HashRuns>) -> Response {
    let n = runs.n.unwrap_or(5).clamp(1, 20);
    let password = SecretString::new("bench-password-123");
    let mut micros = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let started = Instant::now();
        if state.core.hasher.hash(&password).await.is_err() {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        micros.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    micros.sort_unstable();
    let (Ok(mut reused), Ok(mut all_threads)) = (
        state.core.hasher.time_back_to_back(n, false).await,
        state.core.hasher.time_back_to_back(n, true).await,
    ) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    reused.sort_unstable();
    all_threads.sort_unstable();
    axum::Json(serde_json::json!({
        "hash_us": micros,
        "hash_reused_us": reused,
        "hash_all_threads_us": all_threads,
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
struct RateWindow {
    ms: Option<u64>,
}

/// Hashes on every hashing thread for a window; answers each thread's count and duration, and
/// their sum of hashes per second.
async fn argon2_rate(State(state): State<AppState>, Query(window): Query<RateWindow>) -> Response {
    let ms = window.ms.unwrap_or(1000).clamp(100, 20_000);
    let Ok(threads) = state.core.hasher.hash_for(Duration::from_millis(ms)).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let per_second: f64 = threads
        .iter()
        .map(|&(hashes, micros)| f64::from(hashes) * 1e6 / micros.max(1) as f64)
        .sum();
    let threads: Vec<_> = threads
        .iter()
        .map(|&(hashes, micros)| serde_json::json!({ "hashes": hashes, "us": micros }))
        .collect();
    axum::Json(serde_json::json!({ "per_second": per_second, "threads": threads })).into_response()
}
