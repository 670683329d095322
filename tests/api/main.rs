//! The black-box API tests: one binary, one fresh database per test, every test on SQLite and
//! also on PostgreSQL and MariaDB/MySQL when `TEST_POSTGRES_URL` / `TEST_MYSQL_URL` are set.

// Tests fail loudly by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod helpers;

mod admin;
mod auth;
mod cli;
mod compat;
mod direct;
mod errors;
mod hardening;
mod health;
mod import;
mod migrations;
mod observability;
mod profile;
mod rbac;
mod sessions;
mod tokens;
mod users;
