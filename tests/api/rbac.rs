//! Roles and permissions, and the policy enforcing them on every protected route.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, body};

/// The id of the built-in permission named `name`.
async fn permission_id(app: &TestApp, admin: &str, name: &str) -> i64 {
    let all = body(app.get("/rbac/permissions", Some(admin)).await).await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"))["id"]
        .as_i64()
        .unwrap()
}

/// Creates a role holding exactly `permissions`, gives it to `user_id`, and returns its id.
async fn grant(app: &TestApp, admin: &str, user_id: i64, permissions: &[&str]) -> i64 {
    let mut ids = Vec::new();
    for p in permissions {
        ids.push(permission_id(app, admin, p).await);
    }
    let name = format!("role{}", app.unique());
    let role = app
        .post_json(
            "/rbac/roles",
            Some(admin),
            &json!({"name": name, "permission_ids": ids}),
        )
        .await;
    assert_eq!(role.status(), StatusCode::CREATED);
    let role_id = body(role).await["id"].as_i64().unwrap();
    let r = app
        .post_json(
            &format!("/rbac/users/{user_id}/roles"),
            Some(admin),
            &json!({"role_ids": [role_id]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    role_id
}

backend_test!(
    async fn the_seed_rbac_walkthrough_works_verbatim(app) {
        let admin = app.admin().await; // user 1
        let alice = app.post_json("/auth/register", None, &json!({"email": "alice@example.com", "full_name": "Alice Johnson", "password": "SecurePassword123!"})).await;
        assert_eq!(body(alice).await["id"], 2);
        let token = app.login("alice@example.com", "SecurePassword123!").await;
        let admin_token = Some(admin.token.as_str());

        let r = app
            .post_json(
                "/rbac/permissions",
                admin_token,
                &json!({"name": "manage_posts", "description": "Can create, edit, and delete posts", "resource": "post", "action": "manage"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let permission = body(r).await;
        assert_eq!((permission["resource"].clone(), permission["action"].clone()), (json!("post"), json!("manage")));

        let r = app
            .post_json(
                "/rbac/roles",
                admin_token,
                &json!({"name": "content_editor", "description": "Content editors can manage posts and moderate comments",
                        "is_default": false, "permission_ids": [1, 2, 3]}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let role = body(r).await;
        let names: Vec<&str> = role["permissions"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["user:read", "user:write", "user:delete"]);

        let r = app.post_json("/rbac/users/2/roles", admin_token, &json!({"user_id": 2, "role_ids": [1]})).await;
        assert_eq!(r.status(), StatusCode::OK);

        let mine = body(app.get("/rbac/my-permissions", Some(&token)).await).await;
        assert_eq!(mine, json!({"roles": ["user"], "permissions": []}));

        let r = app.get("/rbac/users", admin_token).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-total-count"], "2");
        let users = body(r).await;
        let alice = users.as_array().unwrap().iter().find(|u| u["id"] == 2).unwrap();
        assert_eq!(alice["email"], "alice@example.com");
        assert_eq!(alice["roles"][0]["name"], "user");
        assert!(alice.get("password_hash").is_none());
    }
);

backend_test!(
    async fn the_builtin_catalogue_exists_and_new_users_get_the_default_role(app) {
        let admin = app.admin().await;
        let perms = body(app.get("/rbac/permissions", Some(&admin.token)).await).await;
        let names: Vec<&str> = perms.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["user:read", "user:write", "user:delete", "rbac:read", "rbac:write", "admin:all"]);
        let roles = body(app.get("/rbac/roles", Some(&admin.token)).await).await;
        let summary: Vec<(String, bool, Vec<String>)> = roles
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let perms = r["permissions"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
                (r["name"].as_str().unwrap().to_owned(), r["is_default"].as_bool().unwrap(), perms)
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("user".to_owned(), true, vec![]),
                ("moderator".to_owned(), false, vec!["user:read".to_owned(), "user:write".to_owned()]),
                ("admin".to_owned(), false, vec!["admin:all".to_owned()]),
            ]
        );
        let user = app.user().await;
        let roles = body(app.get(&format!("/rbac/users/{}/roles", user.id), Some(&user.token)).await).await;
        assert_eq!(roles[0]["name"], "user");
        let mine = body(app.get("/rbac/my-permissions", Some(&admin.token)).await).await;
        assert_eq!(mine["permissions"], json!(["admin:all"]), "is_admin implies admin:all");
    }
);

/// Every protected route: (method, path, body, permission that opens it).
fn protected_routes(
    target: i64,
    role: i64,
    permission: i64,
) -> Vec<(Method, String, Option<Value>, &'static str)> {
    let none = None;
    vec![
        (Method::GET, "/users/".into(), none.clone(), "user:read"),
        (Method::GET, format!("/users/{target}"), none.clone(), "user:read"),
        (
            Method::POST,
            "/users/".into(),
            Some(json!({"email": "made@example.com", "password": PASSWORD})),
            "user:write",
        ),
        (
            Method::PUT,
            format!("/users/{target}"),
            Some(json!({"full_name": "Changed"})),
            "user:write",
        ),
        (
            Method::PUT,
            format!("/users/{target}/deactivate"),
            none.clone(),
            "user:write",
        ),
        (
            Method::PUT,
            format!("/users/{target}/activate"),
            none.clone(),
            "user:write",
        ),
        (
            Method::PUT,
            "/users/bulk/activate".into(),
            Some(json!({"user_ids": [target]})),
            "user:write",
        ),
        (
            Method::PUT,
            "/users/bulk/deactivate".into(),
            Some(json!({"user_ids": [target]})),
            "user:write",
        ),
        (
            Method::PUT,
            format!("/users/{target}/make-admin"),
            none.clone(),
            "admin:all",
        ),
        (
            Method::PUT,
            format!("/users/{target}/remove-admin"),
            none.clone(),
            "admin:all",
        ),
        (Method::GET, "/rbac/permissions".into(), none.clone(), "rbac:read"),
        (
            Method::GET,
            format!("/rbac/permissions/{permission}"),
            none.clone(),
            "rbac:read",
        ),
        (Method::GET, "/rbac/roles".into(), none.clone(), "rbac:read"),
        (
            Method::GET,
            format!("/rbac/roles/{role}"),
            none.clone(),
            "rbac:read",
        ),
        (
            Method::GET,
            format!("/rbac/users/{target}/roles"),
            none.clone(),
            "rbac:read",
        ),
        (Method::GET, "/rbac/users".into(), none.clone(), "rbac:read"),
        (
            Method::POST,
            "/rbac/permissions".into(),
            Some(json!({"name": "x:y", "resource": "x", "action": "y"})),
            "rbac:write",
        ),
        (
            Method::PUT,
            format!("/rbac/permissions/{permission}"),
            Some(json!({"description": "d"})),
            "rbac:write",
        ),
        (
            Method::POST,
            "/rbac/roles".into(),
            Some(json!({"name": "r-new"})),
            "rbac:write",
        ),
        (
            Method::PUT,
            format!("/rbac/roles/{role}"),
            Some(json!({"description": "d"})),
            "rbac:write",
        ),
        (
            Method::POST,
            format!("/rbac/users/{target}/roles"),
            Some(json!({"role_ids": [role]})),
            "rbac:write",
        ),
        (
            Method::DELETE,
            format!("/rbac/users/{target}/roles/{role}"),
            none.clone(),
            "rbac:write",
        ),
        (
            Method::DELETE,
            format!("/rbac/roles/{role}"),
            none.clone(),
            "rbac:write",
        ),
        (
            Method::DELETE,
            format!("/rbac/permissions/{permission}"),
            none.clone(),
            "rbac:write",
        ),
        (
            Method::PUT,
            "/users/bulk/delete".into(),
            Some(json!({"user_ids": [999_999]})),
            "user:delete",
        ),
        (Method::DELETE, format!("/users/{target}"), none, "user:delete"),
    ]
}

backend_test!(
    async fn every_protected_route_needs_its_permission_and_a_role_grants_it(app) {
        let admin = app.admin().await;
        let a = Some(admin.token.as_str());
        let target = app.user().await;
        // Scratch objects the routes act on.
        let scratch_perm = body(app.post_json("/rbac/permissions", a, &json!({"name": "scratch", "resource": "s", "action": "t"})).await).await;
        let scratch_role = body(app.post_json("/rbac/roles", a, &json!({"name": "scratch"})).await).await;
        let (role, permission) = (scratch_role["id"].as_i64().unwrap(), scratch_perm["id"].as_i64().unwrap());
        app.post_json(&format!("/rbac/users/{}/roles", target.id), a, &json!({"role_ids": [role]})).await;

        for (method, path, payload, needed) in protected_routes(target.id, role, permission) {
            let caller = app.user().await;
            let send = |token: String| {
                let mut req = app.client.request(method.clone(), app.url(&path)).bearer_auth(token);
                if let Some(p) = &payload {
                    req = req.json(p);
                }
                req.send()
            };
            let denied = send(caller.token.clone()).await.unwrap();
            assert_eq!(denied.status(), StatusCode::FORBIDDEN, "{method} {path} without {needed}");
            assert!(body(denied).await["detail"].as_str().unwrap().contains(needed), "{method} {path}");

            grant(&app, &admin.token, caller.id, &[needed]).await;
            // The same token, on the very next request.
            let allowed = send(caller.token.clone()).await.unwrap();
            assert!(allowed.status().is_success(), "{method} {path} with {needed}: {}", allowed.status());
        }
    }
);

backend_test!(
    async fn granting_and_revoking_a_role_changes_access_on_the_next_request(app) {
        let admin = app.admin().await;
        let user = app.user().await;
        assert_eq!(app.get("/users/", Some(&user.token)).await.status(), StatusCode::FORBIDDEN);
        let moderator = 2; // built-in
        let r = app.post_json(&format!("/rbac/users/{}/roles", user.id), Some(&admin.token), &json!({"role_ids": [moderator]})).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(app.get("/users/", Some(&user.token)).await.status(), StatusCode::OK);
        let check = app.post_json("/rbac/check-permission", Some(&user.token), &json!({"resource": "user", "action": "write"})).await;
        assert_eq!(body(check).await, json!({"resource": "user", "action": "write", "allowed": true}));
        let r = app.delete(&format!("/rbac/users/{}/roles/{moderator}", user.id), Some(&admin.token)).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(app.get("/users/", Some(&user.token)).await.status(), StatusCode::FORBIDDEN);
        let check = app.post_json("/rbac/check-permission", Some(&user.token), &json!({"resource": "user", "action": "write"})).await;
        assert_eq!(body(check).await["allowed"], false);
        // Removing it again: the user does not hold it.
        let r = app.delete(&format!("/rbac/users/{}/roles/{moderator}", user.id), Some(&admin.token)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
);

backend_test!(
    async fn deleting_a_role_or_a_permission_removes_the_access_it_gave(app) {
        let admin = app.admin().await;
        let a = Some(admin.token.as_str());
        let user = app.user().await;
        let role = grant(&app, &admin.token, user.id, &["user:read"]).await;
        assert_eq!(app.get("/users/", Some(&user.token)).await.status(), StatusCode::OK);
        assert_eq!(app.delete(&format!("/rbac/roles/{role}"), a).await.status(), StatusCode::NO_CONTENT);
        assert_eq!(app.get("/users/", Some(&user.token)).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.get(&format!("/rbac/roles/{role}"), a).await.status(), StatusCode::NOT_FOUND);

        // A custom permission checked through check-permission.
        let perm = body(app.post_json("/rbac/permissions", a, &json!({"name": "manage_posts", "resource": "post", "action": "manage"})).await).await;
        let perm_id = perm["id"].as_i64().unwrap();
        let role = body(app.post_json("/rbac/roles", a, &json!({"name": "editor", "permission_ids": [perm_id]})).await).await;
        app.post_json(&format!("/rbac/users/{}/roles", user.id), a, &json!({"role_ids": [role["id"]]})).await;
        let ask = json!({"resource": "post", "action": "manage"});
        assert_eq!(body(app.post_json("/rbac/check-permission", Some(&user.token), &ask).await).await["allowed"], true);
        assert_eq!(app.delete(&format!("/rbac/permissions/{perm_id}"), a).await.status(), StatusCode::NO_CONTENT);
        assert_eq!(body(app.post_json("/rbac/check-permission", Some(&user.token), &ask).await).await["allowed"], false);
        let role = body(app.get(&format!("/rbac/roles/{}", role["id"]), a).await).await;
        assert_eq!(role["permissions"], json!([]), "the role lost the deleted permission");
    }
);

backend_test!(
    async fn roles_and_permissions_validate_and_reject_duplicates(app) {
        let admin = app.admin().await;
        let a = Some(admin.token.as_str());
        let r = app.post_json("/rbac/permissions", a, &json!({"name": "has space", "resource": "a:b"})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let locs: Vec<Value> = body(r).await["detail"].as_array().unwrap().iter().map(|e| e["loc"].clone()).collect();
        assert_eq!(locs, [json!(["body", "name"]), json!(["body", "resource"]), json!(["body", "action"])]);
        let dup = app.post_json("/rbac/permissions", a, &json!({"name": "user:read", "resource": "user", "action": "read"})).await;
        assert_eq!(dup.status(), StatusCode::CONFLICT);
        assert_eq!(body(dup).await["detail"], "A permission with this name already exists");
        let dup = app.post_json("/rbac/roles", a, &json!({"name": "moderator"})).await;
        assert_eq!(dup.status(), StatusCode::CONFLICT);
        let unknown = app.post_json("/rbac/roles", a, &json!({"name": "ghost", "permission_ids": [1, 9999]})).await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(unknown).await["detail"], "Permission 9999 not found");
        assert_eq!(app.get("/rbac/roles/9999", a).await.status(), StatusCode::NOT_FOUND);
        let mismatch = app.post_json("/rbac/users/1/roles", a, &json!({"user_id": 2, "role_ids": [1]})).await;
        assert_eq!(mismatch.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let no_user = app.post_json("/rbac/users/9999/roles", a, &json!({"role_ids": [1]})).await;
        assert_eq!(no_user.status(), StatusCode::NOT_FOUND);
        let no_role = app.post_json("/rbac/users/1/roles", a, &json!({"role_ids": [9999]})).await;
        assert_eq!(no_role.status(), StatusCode::NOT_FOUND);
        // Renaming onto a taken name is a conflict too.
        let r = app.put_json("/rbac/roles/2", a, &json!({"name": "user"})).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
    }
);

backend_test!(
    async fn the_admin_role_and_admin_all_cannot_be_deleted_or_emptied(app) {
        let admin = app.admin().await;
        let a = Some(admin.token.as_str());
        let admin_all = permission_id(&app, &admin.token, "admin:all").await;
        assert_eq!(app.delete(&format!("/rbac/permissions/{admin_all}"), a).await.status(), StatusCode::CONFLICT);
        assert_eq!(app.put_json(&format!("/rbac/permissions/{admin_all}"), a, &json!({"action": "some"})).await.status(), StatusCode::CONFLICT);
        assert_eq!(app.delete("/rbac/roles/3", a).await.status(), StatusCode::CONFLICT);
        assert_eq!(app.put_json("/rbac/roles/3", a, &json!({"permission_ids": []})).await.status(), StatusCode::CONFLICT);
        assert_eq!(app.put_json("/rbac/roles/3", a, &json!({"name": "boss"})).await.status(), StatusCode::CONFLICT);
        let ok = app.put_json("/rbac/roles/3", a, &json!({"description": "Still admins"})).await;
        assert_eq!(ok.status(), StatusCode::OK);
    }
);

backend_test!(
    async fn the_last_active_administrator_can_never_be_removed(app) {
        let admin = app.admin().await;
        let a = Some(admin.token.as_str());
        // A moderator (user:write, user:delete via roles, but not admin) tries to remove the only admin.
        let moderator = app.user().await;
        grant(&app, &admin.token, moderator.id, &["user:write", "user:delete"]).await;
        let m = Some(moderator.token.as_str());
        let path = format!("/users/{}", admin.id);
        assert_eq!(app.put(&format!("{path}/deactivate"), m).await.status(), StatusCode::CONFLICT);
        assert_eq!(app.delete(&path, m).await.status(), StatusCode::CONFLICT);
        let bulk = app.put_json("/users/bulk/deactivate", m, &json!({"user_ids": [admin.id]})).await;
        assert_eq!(bulk.status(), StatusCode::CONFLICT);
        let bulk = app.put_json("/users/bulk/delete", m, &json!({"user_ids": [admin.id]})).await;
        assert_eq!(bulk.status(), StatusCode::CONFLICT);
        assert_eq!(app.get("/users/me", a).await.status(), StatusCode::OK, "the admin is untouched");

        // An admin through the admin role only: taking the role away is refused while they
        // are the last one.
        let second = app.user().await;
        app.post_json(&format!("/rbac/users/{}/roles", second.id), a, &json!({"role_ids": [3]})).await;
        let s = Some(second.token.as_str());
        assert_eq!(app.put(&format!("{path}/remove-admin"), s).await.status(), StatusCode::OK, "two admins: fine");
        // Now `second` is the only admin.
        let remove = app.delete(&format!("/rbac/users/{}/roles/3", second.id), s).await;
        assert_eq!(remove.status(), StatusCode::CONFLICT);
        assert_eq!(app.put(&format!("/users/{}/deactivate", second.id), m).await.status(), StatusCode::CONFLICT);
        // With another admin in place it works.
                let restored = app.put(&format!("{path}/make-admin"), s).await;
        assert_eq!(restored.status(), StatusCode::OK, "{:?}", body(restored).await);
        assert_eq!(app.delete(&format!("/rbac/users/{}/roles/3", second.id), a).await.status(), StatusCode::NO_CONTENT);
    }
);

backend_test!(
    async fn users_can_be_listed_by_role_and_see_their_own_roles_only(app) {
        let admin = app.admin().await;
        let a = Some(admin.token.as_str());
        let mods = [app.user().await, app.user().await];
        let plain = app.user().await;
        for m in &mods {
            app.post_json(&format!("/rbac/users/{}/roles", m.id), a, &json!({"role_ids": [2]})).await;
        }
        let r = app.get("/users/?role=moderator", a).await;
        assert_eq!(r.headers()["x-total-count"], "2");
        let own = app.get(&format!("/rbac/users/{}/roles", plain.id), Some(&plain.token)).await;
        assert_eq!(own.status(), StatusCode::OK);
        let other = app.get(&format!("/rbac/users/{}/roles", mods[0].id), Some(&plain.token)).await;
        assert_eq!(other.status(), StatusCode::FORBIDDEN);
        let check = app.post_json("/rbac/check-permission", Some(&plain.token), &json!({"resource": "user"})).await;
        assert_eq!(check.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
);

/// The sorted names of the roles in a `GET /rbac/users/{id}/roles` answer.
async fn role_names(app: &TestApp, admin: &str, user_id: i64) -> Vec<String> {
    let r = app
        .get(&format!("/rbac/users/{user_id}/roles"), Some(admin))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut names: Vec<String> = body(r)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|role| role["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

backend_test!(
    async fn every_new_user_gets_the_default_roles_and_a_refused_one_gets_none(app) {
        let admin = app.admin().await;
        let t = Some(admin.token.as_str());
        let read = permission_id(&app, &admin.token, "user:read").await;
        let r = app.post_json("/rbac/roles", t, &json!({"name": "member", "is_default": true, "permission_ids": [read]})).await;
        assert_eq!(r.status(), StatusCode::CREATED);

        let r = app.post_json("/auth/register", None, &json!({"email": "newcomer@example.com", "password": PASSWORD})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let newcomer = body(r).await["id"].as_i64().unwrap();
        assert_eq!(role_names(&app, &admin.token, newcomer).await, ["member", "user"]);
        let token = app.login("newcomer@example.com", PASSWORD).await;
        let mine = body(app.get("/rbac/my-permissions", Some(&token)).await).await;
        assert_eq!(mine["permissions"], json!(["user:read"]));

        let r = app.post_json("/users/", t, &json!({"email": "staff@example.com", "password": PASSWORD})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let staff = body(r).await["id"].as_i64().unwrap();
        assert_eq!(role_names(&app, &admin.token, staff).await, ["member", "user"]);

        // A registration refused for its email writes nothing: no user, no role assignment.
        let r = app.post_json("/auth/register", None, &json!({"email": "NEWCOMER@example.com", "password": PASSWORD})).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r = app.get("/rbac/users", t).await;
        assert_eq!(r.headers()["x-total-count"], "3");
        let assigned: usize = body(r).await.as_array().unwrap().iter().map(|u| u["roles"].as_array().unwrap().len()).sum();
        assert_eq!(assigned, 2 + 2 + role_names(&app, &admin.token, admin.id).await.len());
    }
);
