//! Roles and permissions, with the built-in catalogue; existing users get the default role.

use sea_orm_migration::prelude::*;

use crate::store::rbac;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Permissions {
    Table,
    Id,
    Name,
    Description,
    Resource,
    Action,
}

#[derive(DeriveIden)]
enum Roles {
    Table,
    Id,
    Name,
    Description,
    IsDefault,
}

#[derive(DeriveIden)]
enum RolePermissions {
    Table,
    RoleId,
    PermissionId,
}

#[derive(DeriveIden)]
enum UserRoles {
    Table,
    UserId,
    RoleId,
}

fn id(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn cascade(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Permissions::Table)
                    .col(id(Permissions::Id))
                    .col(
                        ColumnDef::new(Permissions::Name)
                            .string_len(100)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Permissions::Description).text().null())
                    .col(ColumnDef::new(Permissions::Resource).string_len(50).not_null())
                    .col(ColumnDef::new(Permissions::Action).string_len(50).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Roles::Table)
                    .col(id(Roles::Id))
                    .col(ColumnDef::new(Roles::Name).string_len(50).not_null().unique_key())
                    .col(ColumnDef::new(Roles::Description).text().null())
                    .col(
                        ColumnDef::new(Roles::IsDefault)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RolePermissions::Table)
                    .col(ColumnDef::new(RolePermissions::RoleId).big_integer().not_null())
                    .col(
                        ColumnDef::new(RolePermissions::PermissionId)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(RolePermissions::RoleId)
                            .col(RolePermissions::PermissionId),
                    )
                    .foreign_key(&mut cascade(
                        "fk_role_permissions_role",
                        (RolePermissions::Table, RolePermissions::RoleId),
                        (Roles::Table, Roles::Id),
                    ))
                    .foreign_key(&mut cascade(
                        "fk_role_permissions_permission",
                        (RolePermissions::Table, RolePermissions::PermissionId),
                        (Permissions::Table, Permissions::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserRoles::Table)
                    .col(ColumnDef::new(UserRoles::UserId).big_integer().not_null())
                    .col(ColumnDef::new(UserRoles::RoleId).big_integer().not_null())
                    .primary_key(Index::create().col(UserRoles::UserId).col(UserRoles::RoleId))
                    .foreign_key(&mut cascade(
                        "fk_user_roles_user",
                        (UserRoles::Table, UserRoles::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .foreign_key(&mut cascade(
                        "fk_user_roles_role",
                        (UserRoles::Table, UserRoles::RoleId),
                        (Roles::Table, Roles::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, table, col) in [
            (
                "ix_role_permissions_permission",
                RolePermissions::Table.into_iden(),
                RolePermissions::PermissionId.into_iden(),
            ),
            (
                "ix_user_roles_role",
                UserRoles::Table.into_iden(),
                UserRoles::RoleId.into_iden(),
            ),
        ] {
            manager
                .create_index(Index::create().name(name).table(table).col(col).to_owned())
                .await?;
        }

        let db = manager.get_connection();
        rbac::seed_catalogue(db).await?;
        rbac::grant_default_roles_after(db, 0).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            UserRoles::Table.into_iden(),
            RolePermissions::Table.into_iden(),
            Roles::Table.into_iden(),
            Permissions::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
