//! API keys and tenants: authentication, scopes, isolation, rates.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, eventually};

async fn app_with_auth() -> TestApp {
    TestApp::spawn_with(
        |c| {
            c.auth.enabled = true;
            c.auth.cache_seconds = 1.try_into().unwrap();
        },
        true,
    )
    .await
}

async fn submit_as(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.as_key(Method::POST, "/run-task", token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn id_of(body: &Value) -> String {
    body["task_uuid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn with_auth_on_the_task_api_needs_a_valid_key_and_probes_do_not() {
    let app = app_with_auth().await;
    let missing = app
        .post_task(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let bad = submit_as(
        &app,
        "tsk_not-a-key",
        json!({"task_name": "sum", "a": 1, "b": 2}),
    )
    .await;
    assert_eq!(bad.status(), 401);
    assert_eq!(app.get("/tasks").await.status(), 401);
    for open in ["/health", "/ready", "/openapi.json", "/docs"] {
        assert_eq!(app.get(open).await.status(), 200, "{open}");
    }
    assert!(app.metrics().await.contains("tasker_"));
    assert_eq!(app.count_tasks().await, 0);
}

#[tokio::test]
async fn a_key_may_do_only_what_its_scopes_allow() {
    let app = app_with_auth().await;
    let reader = app.key("acme", &["read"], None).await;
    let writer = app.key("acme", &["submit"], None).await;
    let refused = submit_as(&app, &reader, json!({"task_name": "sum", "a": 1, "b": 2})).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["code"],
        "forbidden"
    );
    let accepted = submit_as(&app, &writer, json!({"task_name": "sum", "a": 1, "b": 2})).await;
    assert_eq!(accepted.status(), 202);
    let id = id_of(&accepted.json().await.unwrap());
    let read = app
        .send_as(Method::GET, &format!("/tasks/{id}"), &writer)
        .await;
    assert_eq!(read.status(), 403, "submit alone does not read");
    let read = app
        .send_as(Method::GET, &format!("/tasks/{id}"), &reader)
        .await;
    assert_eq!(read.status(), 200);
    let keys = app.send_as(Method::GET, "/keys", &reader).await;
    assert_eq!(keys.status(), 403, "only admin keys manage keys");
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_tasks_and_an_admin_sees_all() {
    let app = app_with_auth().await;
    let acme = app.key("acme", &["submit", "read"], None).await;
    let globex = app.key("globex", &["submit", "read"], None).await;
    let admin = app.key("ops", &["admin"], None).await;
    let mine = submit_as(&app, &acme, json!({"task_name": "sum", "a": 1, "b": 2})).await;
    let mine = id_of(&mine.json().await.unwrap());
    let theirs = submit_as(&app, &globex, json!({"task_name": "sum", "a": 3, "b": 4})).await;
    let theirs = id_of(&theirs.json().await.unwrap());
    // Finished, so the second read of each is a cache hit: checked too.
    for _ in 0..2 {
        let task: Value = eventually(|| async {
            let r = app
                .as_key(Method::GET, &format!("/tasks/{mine}?wait=5"), &acme)
                .send()
                .await
                .ok()?;
            let task: Value = r.json().await.ok()?;
            (task["status"] == "completed").then_some(task)
        })
        .await;
        assert_eq!(task["tenant"], "acme");
        for path in [
            format!("/tasks/{mine}"),
            format!("/get-task-output?task_uuid={mine}"),
            format!("/tasks/{mine}/submission"),
        ] {
            let other = app.send_as(Method::GET, &path, &globex).await;
            assert_eq!(
                other.status(),
                404,
                "{path}: another tenant's task does not exist for globex"
            );
        }
    }
    let listed: Value = app.json_as(Method::GET, "/tasks", &acme).await;
    let ids: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_uuid"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![mine.as_str()]);
    let everything: Value = app.json_as(Method::GET, "/tasks", &admin).await;
    assert_eq!(everything["tasks"].as_array().unwrap().len(), 2);
    let one: Value = app
        .json_as(Method::GET, "/tasks?tenant=globex", &admin)
        .await;
    assert_eq!(one["tasks"][0]["task_uuid"], theirs.as_str());
    let as_admin = app
        .send_as(Method::GET, &format!("/tasks/{theirs}"), &admin)
        .await;
    assert_eq!(as_admin.status(), 200);
}

#[tokio::test]
async fn the_same_idempotency_key_from_two_tenants_makes_two_tasks() {
    let app = app_with_auth().await;
    let acme = app.key("acme", &["submit"], None).await;
    let globex = app.key("globex", &["submit"], None).await;
    let mut ids = Vec::new();
    for token in [&acme, &globex, &acme] {
        let response = app
            .as_key(Method::POST, "/run-task", token)
            .header("idempotency-key", "order-1")
            .json(&json!({"task_name": "sum", "a": 1, "b": 2}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        ids.push(id_of(&response.json().await.unwrap()));
    }
    assert_ne!(ids[0], ids[1]);
    assert_eq!(ids[0], ids[2], "a tenant's own retry replays");
    assert_eq!(app.count_tasks().await, 2);
}

#[tokio::test]
async fn a_key_request_out_of_bounds_is_refused_and_makes_no_key() {
    let app = app_with_auth().await;
    let admin = app.key("ops", &["admin"], None).await;
    let base = json!({"tenant": "acme", "scopes": ["read"]});
    for (field, value) in [
        ("expires_in_seconds", json!(0)),
        ("expires_in_seconds", json!(3_155_760_001_u64)),
        ("expires_in_seconds", json!(1.5)),
        ("rate_per_second", json!(0)),
        ("rate_per_second", json!(2_147_483_648_u64)),
        ("max_running", json!(-1)),
        ("description", json!("é".repeat(201))),
        ("description", json!("a\u{0}b")),
    ] {
        let mut body = base.clone();
        body[field] = value.clone();
        let answer = app
            .as_key(Method::POST, "/keys", &admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 422, "{field} = {value}");
    }
    let mut whole = base.clone();
    whole["expires_in_seconds"] = json!(60.0);
    let made = app
        .as_key(Method::POST, "/keys", &admin)
        .json(&whole)
        .send()
        .await
        .unwrap();
    assert_eq!(
        made.status(),
        201,
        "a whole number written as 60.0 is a whole number"
    );
    let listed: Value = app.json_as(Method::GET, "/keys", &admin).await;
    let acme = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["tenant"] == "acme")
        .count();
    assert_eq!(acme, 1, "only the valid request made a key: {listed}");
}

#[tokio::test]
async fn a_revoked_or_expired_key_stops_working_within_the_cache_time() {
    let app = app_with_auth().await;
    let admin = app.key("ops", &["admin"], None).await;
    let made: Value = app
        .as_key(Method::POST, "/keys", &admin)
        .json(&json!({"tenant": "acme", "scopes": ["submit", "read"], "expires_in_seconds": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = made["token"].as_str().unwrap().to_owned();
    let id = made["key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.send_as(Method::GET, "/tasks", &token).await.status(),
        200
    );
    let listed: Value = app.json_as(Method::GET, "/keys", &admin).await;
    let text = listed.to_string();
    assert!(
        text.contains(&id) && !text.contains(&token),
        "ids listed, tokens never"
    );
    let revoked = app
        .send_as(Method::POST, &format!("/keys/{id}/revoke"), &admin)
        .await;
    assert_eq!(revoked.status(), 200);
    let started = std::time::Instant::now();
    eventually(|| async {
        let status = app
            .as_key(Method::GET, "/tasks", &token)
            .send()
            .await
            .ok()?
            .status();
        (status == 401).then_some(())
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    let short = app.key("acme", &["read"], None).await;
    let store = &app.services.store;
    sqlx::query("UPDATE api_keys SET expires_at = now() WHERE token_hash = $1")
        .bind(tasker::auth::hash_token(&short))
        .execute(&app.env.pool().await)
        .await
        .unwrap();
    let _ = store;
    eventually(|| async {
        let status = app
            .as_key(Method::GET, "/tasks", &short)
            .send()
            .await
            .ok()?
            .status();
        (status == 401).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_key_past_its_rate_gets_429_and_stores_nothing_more() {
    let app = app_with_auth().await;
    let limited = app.key("acme", &["submit"], Some(5)).await;
    let mut admitted = 0;
    let mut refused = None;
    for i in 0..12 {
        let response = submit_as(&app, &limited, json!({"task_name": "sum", "a": i, "b": 0})).await;
        match response.status().as_u16() {
            202 => admitted += 1,
            429 => refused = Some(response),
            other => panic!("unexpected {other}"),
        }
    }
    let refused = refused.expect("the rate is enforced");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["code"],
        "rate_limited"
    );
    assert!(
        (5..=7).contains(&admitted),
        "{admitted} admitted in a burst at 5/s"
    );
    assert_eq!(app.count_tasks().await, admitted);
    // A batch counts one per task.
    let batch = app
        .as_key(Method::POST, "/run-tasks", &limited)
        .json(&json!({"tasks": vec![json!({"task_name": "sum", "a": 1, "b": 1}); 4]}))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 429);
}

#[tokio::test]
async fn a_batch_spends_one_unit_of_the_rate_per_task() {
    let app = app_with_auth().await;
    let batch = |n: usize| json!({"tasks": vec![json!({"task_name": "sum", "a": 1, "b": 1}); n]});
    let limited = app.key("acme", &["submit"], Some(5)).await;
    let first = app
        .as_key(Method::POST, "/run-tasks", &limited)
        .json(&batch(3))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    // Three of the five a second are spent: about two singles are left.
    let mut singles = 0;
    loop {
        let response = submit_as(&app, &limited, json!({"task_name": "sum", "a": 1, "b": 2})).await;
        if response.status() == 429 {
            break;
        }
        assert_eq!(response.status(), 202);
        singles += 1;
        assert!(singles < 10, "the rate is not enforced after a batch");
    }
    assert!(
        (2..=4).contains(&singles),
        "{singles} singles after a batch of 3 at 5/s"
    );
    let refused = app
        .as_key(Method::POST, "/run-tasks", &limited)
        .json(&batch(4))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(
        app.count_tasks().await,
        3 + singles,
        "a refused batch stores nothing"
    );

    // A batch larger than the rate fits an idle key, which then waits for it.
    let idle = app.key("globex", &["submit"], Some(5)).await;
    let big = app
        .as_key(Method::POST, "/run-tasks", &idle)
        .json(&batch(20))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 202);
    let next = submit_as(&app, &idle, json!({"task_name": "sum", "a": 1, "b": 2})).await;
    assert_eq!(next.status(), 429);
    let retry_after: u64 = next.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (2..=4).contains(&retry_after),
        "20 tasks at 5/s leave about 3 s to wait: {retry_after}"
    );
    assert_eq!(app.count_tasks().await, 3 + singles + 20);
}

#[tokio::test]
async fn keys_are_not_managed_over_the_api_while_auth_is_off() {
    let app = TestApp::spawn_api_only().await;
    let made = app
        .post_json("/keys", json!({"tenant": "acme", "scopes": ["admin"]}))
        .await;
    assert_eq!(made.status(), 403, "an anonymous caller cannot mint keys");
    assert_eq!(
        made.json::<Value>().await.unwrap()["error"]["code"],
        "forbidden"
    );
    assert_eq!(app.get("/keys").await.status(), 403);
    let revoke = app.post_json("/keys/bootstrap/revoke", json!({})).await;
    assert_eq!(revoke.status(), 403);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&app.env.pool().await)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    // The task API works as it did before keys existed.
    assert_eq!(
        app.post_task(json!({"task_name": "sum", "a": 1, "b": 2}))
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn a_key_revoked_on_one_replica_stops_working_on_another() {
    let first = app_with_auth().await;
    let mut env = crate::support::TestEnv::new().await;
    env.config = first.env.config.clone();
    let second = TestApp::start(env, false).await;
    let admin = first.key("ops", &["admin"], None).await;
    let reader = first.key("acme", &["read"], None).await;
    // The second replica has looked the key up and trusts it for a while.
    let read = |app: &TestApp| app.as_key(Method::GET, "/tasks", &reader).send();
    assert_eq!(read(&second).await.unwrap().status(), 200);
    let listed: Value = first.json_as(Method::GET, "/keys", &admin).await;
    let id = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["tenant"] == "acme")
        .and_then(|k| k["id"].as_str())
        .unwrap()
        .to_owned();
    let revoked = first
        .send_as(Method::POST, &format!("/keys/{id}/revoke"), &admin)
        .await;
    assert_eq!(revoked.status(), 200);
    let started = std::time::Instant::now();
    eventually(|| async { (read(&second).await.ok()?.status() == 401).then_some(()) }).await;
    // auth.cache_seconds is 1 in these tests.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the other replica refused only after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn two_api_replicas_enforce_one_rate() {
    let first = app_with_auth().await;
    // A second replica of the same service: same database and key prefix.
    let mut env = crate::support::TestEnv::new().await;
    env.config = first.env.config.clone();
    let second = TestApp::start(env, false).await;
    let limited = first.key("acme", &["submit"], Some(4)).await;
    let mut admitted = 0;
    for i in 0..16 {
        let app = if i % 2 == 0 { &first } else { &second };
        let response = submit_as(app, &limited, json!({"task_name": "sum", "a": i, "b": 0})).await;
        if response.status() == 202 {
            admitted += 1;
        }
    }
    assert!(
        (4..=6).contains(&admitted),
        "{admitted} admitted across two replicas at 4/s"
    );
}

#[test]
fn tasker_keys_makes_lists_and_revokes_keys() {
    use crate::support::processes::run_to_end;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let env = runtime.block_on(crate::support::TestEnv::new());
    let url = env.database_url();
    let vars = [("TASKER_DATABASE__URL", url.as_str())];
    let (ok, printed) = run_to_end(
        &[
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scope",
            "submit",
            "--scope",
            "read",
            "--rate",
            "10",
            "--max-running",
            "3",
            "--expires-in",
            "30d",
        ],
        &vars,
    );
    assert!(ok, "{printed}");
    let token = printed.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("tsk_") && token.len() == 68, "{printed}");
    let limit: Option<i32> = runtime.block_on(async {
        sqlx::query_scalar("SELECT max_running FROM tenants WHERE name = 'acme'")
            .fetch_one(&env.pool().await)
            .await
            .unwrap()
    });
    assert_eq!(limit, Some(3), "--max-running sets the tenant's limit");
    let (ok, listed) = run_to_end(&["keys", "list"], &vars);
    assert!(ok, "{listed}");
    assert!(
        listed.contains("acme") && listed.contains("submit,read") && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&token), "tokens are never shown again");
    let id = listed
        .lines()
        .find(|l| l.contains("acme"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let (ok, revoked) = run_to_end(&["keys", "revoke", &id], &vars);
    assert!(ok && revoked.contains("revoked"), "{revoked}");
    let (_, listed) = run_to_end(&["keys", "list", "--tenant", "acme"], &vars);
    assert!(listed.contains("revoked"), "{listed}");
    let (ok, _) = run_to_end(&["keys", "revoke", "key_nope"], &vars);
    assert!(!ok);
    let (ok, printed) = run_to_end(
        &["keys", "create", "--tenant", "Bad Name", "--scope", "read"],
        &vars,
    );
    assert!(!ok && printed.contains("tenant"), "{printed}");
    drop(runtime);
}

#[tokio::test]
async fn the_bootstrap_token_is_an_admin_key() {
    let token = "bootstrap-token-of-forty-characters-0123";
    let app = TestApp::spawn_with(
        |c| {
            c.auth.enabled = true;
            c.auth.bootstrap_token = Some(tasker::config::SecretString::from(token.to_owned()));
        },
        false,
    )
    .await;
    let keys = eventually(|| async {
        let response = app.as_key(Method::GET, "/keys", token).send().await.ok()?;
        (response.status() == 200).then_some(response)
    })
    .await;
    let keys: Value = keys.json().await.unwrap();
    assert_eq!(keys["keys"][0]["id"], "bootstrap");
    assert_eq!(keys["keys"][0]["scopes"], json!(["admin"]));
}
