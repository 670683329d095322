use sea_orm_migration::prelude::*;

use super::timestamp;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    EmailLower,
    Username,
    UsernameLower,
    FullName,
    PasswordHash,
    IsActive,
    IsAdmin,
    CreatedAt,
    UpdatedAt,
    LastLoginAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
    RevokedAt,
    UserAgent,
    ClientAddr,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(
                        ColumnDef::new(Users::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Users::Email).string_len(255).not_null())
                    .col(ColumnDef::new(Users::EmailLower).string_len(255).not_null())
                    .col(ColumnDef::new(Users::Username).string_len(64).null())
                    .col(ColumnDef::new(Users::UsernameLower).string_len(64).null())
                    .col(ColumnDef::new(Users::FullName).string_len(255).null())
                    .col(ColumnDef::new(Users::PasswordHash).string_len(255).not_null())
                    .col(ColumnDef::new(Users::IsActive).boolean().not_null().default(true))
                    .col(ColumnDef::new(Users::IsAdmin).boolean().not_null().default(false))
                    .col(timestamp(db, Users::CreatedAt).not_null())
                    .col(timestamp(db, Users::UpdatedAt).not_null())
                    .col(timestamp(db, Users::LastLoginAt).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_users_email_lower")
                    .table(Users::Table)
                    .col(Users::EmailLower)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_users_username_lower")
                    .table(Users::Table)
                    .col(Users::UsernameLower)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_users_created_at")
                    .table(Users::Table)
                    .col(Users::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(
                        ColumnDef::new(Sessions::Id)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Sessions::UserId).big_integer().not_null())
                    .col(timestamp(db, Sessions::CreatedAt).not_null())
                    .col(timestamp(db, Sessions::LastUsedAt).not_null())
                    .col(timestamp(db, Sessions::ExpiresAt).not_null())
                    .col(timestamp(db, Sessions::RevokedAt).null())
                    .col(ColumnDef::new(Sessions::UserAgent).string_len(255).null())
                    .col(ColumnDef::new(Sessions::ClientAddr).string_len(64).null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sessions_user")
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sessions_user_id")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}
