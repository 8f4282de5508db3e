//! Bulk cancel and retry by filter.

use super::*;

#[tokio::test]
async fn bulk_actions_act_on_every_match_and_only_on_matches() {
    let mut app = TestApp::spawn_api_only().await;
    // 1,150 sums (more than one batch) and 40 file hashes.
    for chunk in 0..12 {
        let tasks: Vec<Value> = (0..100)
            .map(|i| {
                if chunk == 11 && i >= 50 {
                    json!({"task_name": "file_hash", "content": format!("c{i}")})
                } else {
                    json!({"task_name": "sum", "a": i, "b": chunk})
                }
            })
            .collect();
        let response = app.post_json("/run-tasks", json!({"tasks": tasks})).await;
        assert_eq!(response.status(), 202);
    }
    let refused = app.post_json("/tasks/cancel", json!({})).await;
    assert_eq!(refused.status(), 422, "no filter and no `all`");
    for wrong in [
        json!({"status": "completed"}),
        json!({"all": false}),
        json!({"tenant": ""}),
        json!({"status": null}),
    ] {
        let response = app.post_json("/tasks/cancel", wrong.clone()).await;
        assert_eq!(response.status(), 422, "{wrong}");
    }

    let response = app
        .post_json(
            "/tasks/cancel",
            json!({"task_name": "sum", "queue": "default"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"cancelled": 1150})
    );
    let counts: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT task_name, status, count(*) FROM tasks GROUP BY 1, 2 ORDER BY 1, 2")
            .fetch_all(&app.env.pool().await)
            .await
            .unwrap();
    assert_eq!(
        counts,
        vec![
            ("file_hash".into(), "pending".into(), 50),
            ("sum".into(), "cancelled".into(), 1150)
        ]
    );
    let page = app
        .get_json("/tasks?status=cancelled&queue=default&limit=5")
        .await;
    assert_eq!(page["tasks"].as_array().unwrap().len(), 5);

    let response = app
        .post_json("/tasks/retry", json!({"status": "cancelled"}))
        .await;
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"retried": 1150})
    );
    app.start_worker().await;
    let pool = app.env.pool().await;
    wait_for_count(
        &pool,
        "SELECT count(*) FROM tasks WHERE status = 'completed'",
        1200,
    )
    .await;
}

/// How many tasks of this test's database are in each status.
async fn by_status(app: &TestApp) -> std::collections::BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT status, count(*) FROM tasks GROUP BY 1")
        .fetch_all(&app.env.pool().await)
        .await
        .unwrap();
    rows.into_iter().collect()
}

#[tokio::test]
async fn a_bulk_cancel_racing_a_worker_leaves_no_task_pending() {
    const TASKS: i64 = 2_500;
    let mut app = TestApp::spawn_api_only().await;
    for chunk in 0..TASKS / 100 {
        let tasks: Vec<Value> = (0..100)
            .map(|i| json!({"task_name": "sum", "a": i, "b": chunk}))
            .collect();
        let response = app.post_json("/run-tasks", json!({"tasks": tasks})).await;
        assert_eq!(response.status(), 202);
    }
    // Once the worker is up to speed, the cancel starts where it drains
    // the queue (the oldest task): tasks finish under the cancel's first
    // page, which then changes fewer than it holds without being the last.
    app.start_worker().await;
    eventually(|| async {
        let done = by_status(&app).await.get("completed").copied();
        (done >= Some(300)).then_some(())
    })
    .await;
    let response = app
        .post_json("/tasks/cancel", json!({"task_name": "sum"}))
        .await;
    assert_eq!(response.status(), 200);
    let answered = response.json::<Value>().await.unwrap()["cancelled"]
        .as_i64()
        .unwrap();

    // Whatever the worker had not finished is cancelled, at once.
    let counts = by_status(&app).await;
    let count = |status: &str| counts.get(status).copied().unwrap_or(0);
    assert_eq!(count("pending") + count("running"), 0, "{counts:?}");
    assert_eq!(count("cancelled"), answered, "{counts:?}");
    assert_eq!(count("completed") + answered, TASKS, "{counts:?}");
    assert!(
        answered > 0,
        "the worker finished every task before the cancel: {counts:?}"
    );
    println!(
        "the worker finished {}, the cancel took {answered}",
        count("completed")
    );
}
