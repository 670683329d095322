//! Refresh-token rotation and profile fields (the account-lifecycle release).

use sea_orm_migration::prelude::*;

use super::timestamp;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Bio,
    AvatarUrl,
    Location,
    Website,
    PhoneNumber,
    BirthDate,
    Preferences,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    SessionId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        // One column per statement: SQLite cannot add several in one ALTER TABLE.
        let columns = [
            ColumnDef::new(Users::Bio).text().null().to_owned(),
            ColumnDef::new(Users::AvatarUrl).string_len(500).null().to_owned(),
            ColumnDef::new(Users::Location).string_len(255).null().to_owned(),
            ColumnDef::new(Users::Website).string_len(500).null().to_owned(),
            ColumnDef::new(Users::PhoneNumber)
                .string_len(20)
                .null()
                .to_owned(),
            ColumnDef::new(Users::BirthDate).date().null().to_owned(),
            // JSON kept as text: the same type and behaviour on every backend.
            ColumnDef::new(Users::Preferences).text().null().to_owned(),
        ];
        for column in columns {
            manager
                .alter_table(Table::alter().table(Users::Table).add_column(column).to_owned())
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(
                        ColumnDef::new(RefreshTokens::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(RefreshTokens::SessionId).string_len(64).not_null())
                    .col(ColumnDef::new(RefreshTokens::TokenHash).string_len(64).not_null())
                    .col(timestamp(db, RefreshTokens::CreatedAt).not_null())
                    .col(timestamp(db, RefreshTokens::ExpiresAt).not_null())
                    .col(timestamp(db, RefreshTokens::UsedAt).null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_refresh_tokens_session")
                            .from(RefreshTokens::Table, RefreshTokens::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_refresh_tokens_hash")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::TokenHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_refresh_tokens_session")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::SessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RefreshTokens::Table).to_owned())
            .await?;
        for column in [
            Users::Preferences,
            Users::BirthDate,
            Users::PhoneNumber,
            Users::Website,
            Users::Location,
            Users::AvatarUrl,
            Users::Bio,
        ] {
            manager
                .alter_table(Table::alter().table(Users::Table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
