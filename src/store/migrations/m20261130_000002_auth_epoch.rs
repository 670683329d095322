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
//! that did not exist), nor does an update of a session that only slides its expiry forward;
//! every other insert, update, delete or truncate does, whoever runs it, the service or an
//! operator at a `psql` prompt. Rows of processes that have ended are folded
//! into row 0 from time to time (`store::pg_direct::fold_auth_epoch`), which keeps the sum.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each table the lookups read, and the changes to it that count.
const WATCHED: [(&str, &str); 6] = [
    ("users", "UPDATE OR DELETE OR TRUNCATE"),
    ("sessions", "DELETE OR TRUNCATE"),
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
        // Every refresh slides its session's expiry forward; that alone does not count (a kept
        // answer whose session looks expired is read again), so refreshes do not move the epoch.
        statements.push(
            "CREATE TRIGGER sessions_update_auth_epoch AFTER UPDATE ON sessions FOR EACH ROW \
             WHEN (new.revoked_at IS DISTINCT FROM old.revoked_at OR new.expires_at < old.expires_at \
                   OR new.user_id <> old.user_id OR new.id <> old.id) \
             EXECUTE FUNCTION bump_auth_epoch()"
                .to_owned(),
        );
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
        statements.push("DROP TRIGGER IF EXISTS sessions_update_auth_epoch ON sessions".to_owned());
        statements.push("DROP FUNCTION IF EXISTS bump_auth_epoch()".to_owned());
        statements.push("DROP TABLE IF EXISTS auth_epoch".to_owned());
        for statement in statements {
            db.execute_unprepared(&statement).await?;
        }
        Ok(())
    }
}
