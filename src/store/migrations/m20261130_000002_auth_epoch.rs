//! PostgreSQL only: a counter that moves whenever anything the auth lookup reads changes, so the
//! pipelined reads (`store::pg_direct`) can keep what they read and check it is still current
//! with one tiny query instead of reading it again.
//!
//! `auth_epoch` holds a row per server process that changed something: triggers on the tables
//! the auth lookup and `GET /users/{id}` read add one to the row of the process that ran the
//! statement, in the statement's own transaction. So the sum over the rows moves, atomically
//! with the change, at every commit that could change an answer, and only a process's own
//! transactions ever write its row: no two transactions wait on one another for it, and none can
//! deadlock over it. Inserts into `users` and `sessions` do not count (nothing kept can be a row
//! that did not exist); every other insert, update, delete or truncate does, whoever runs it,
//! the service or an operator at a `psql` prompt. Rows of processes that have ended are folded
//! into row 0 from time to time (`store::pg_direct::fold_auth_epoch`), which keeps the sum.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each table the lookups read, and the changes to it that count.
const WATCHED: [(&str, &str); 6] = [
    ("users", "UPDATE OR DELETE OR TRUNCATE"),
    ("sessions", "UPDATE OR DELETE OR TRUNCATE"),
    ("user_roles", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
    ("roles", "UPDATE OR DELETE OR TRUNCATE"),
    ("role_permissions", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
    ("permissions", "UPDATE OR DELETE OR TRUNCATE"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        let mut statements = vec![
            "CREATE TABLE auth_epoch (pid integer PRIMARY KEY, n bigint NOT NULL)".to_owned(),
            "INSERT INTO auth_epoch (pid, n) VALUES (0, 0)".to_owned(),
            "CREATE FUNCTION bump_auth_epoch() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               INSERT INTO auth_epoch (pid, n) VALUES (pg_backend_pid(), 1) \
                 ON CONFLICT (pid) DO UPDATE SET n = auth_epoch.n + 1; \
               RETURN NULL; \
             END $$"
                .to_owned(),
        ];
        statements.extend(WATCHED.iter().map(|(table, events)| {
            format!(
                "CREATE TRIGGER {table}_auth_epoch AFTER {events} ON {table} \
                 FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch()"
            )
        }));
        for statement in statements {
            db.execute_unprepared(&statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        let mut statements: Vec<String> = WATCHED
            .iter()
            .map(|(table, _)| format!("DROP TRIGGER IF EXISTS {table}_auth_epoch ON {table}"))
            .collect();
        statements.push("DROP FUNCTION IF EXISTS bump_auth_epoch()".to_owned());
        statements.push("DROP TABLE IF EXISTS auth_epoch".to_owned());
        for statement in statements {
            db.execute_unprepared(&statement).await?;
        }
        Ok(())
    }
}
