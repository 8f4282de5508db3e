//! Lost messages dispatched again by the reconciler: once, and only when
//! really lost.

use super::*;

#[tokio::test]
async fn a_stored_task_whose_dispatch_was_lost_still_runs() {
    let app = TestApp::spawn().await;
    // Stored but never dispatched, as if the API died right after the commit.
    let task = app
        .services
        .store
        .insert_task(&new_task(&app, "sum", json!({"a": 2, "b": 3})))
        .await
        .unwrap();
    let done = app.wait_terminal(task.id).await;
    assert_eq!(done["task_output"], json!({"result": 5}));
}

#[tokio::test]
async fn tasks_in_redis_flushed_away_are_dispatched_again_once() {
    let app = TestApp::spawn_api_only().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            app.submit(json!({"task_name": "sum", "a": i, "b": 0}))
                .await,
        );
    }
    let key = app.services.keys.ready("default", "default");
    let _: () = app.env.redis().await.del(&key).await.unwrap();
    let mut app = app;
    app.start_worker().await;
    for id in ids {
        let task = app.wait_terminal(id).await;
        assert_eq!(task["attempts"], 1);
    }
    let page = app.worker_metrics().await;
    let lost = crate::support::metric(
        &page,
        "tasker_tasks_recovered_total{reason=\"dispatch_lost\"}",
    );
    assert!(lost >= Some(20.0), "{page}");
}

#[tokio::test]
async fn a_task_still_queued_in_a_backlog_is_not_dispatched_again() {
    // The worker consumes another queue, so `default` is a standing backlog.
    let mut app = TestApp::spawn_with(|c| c.worker.queues = vec!["llm".to_owned()], false).await;
    let waiting = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 0}))
        .await;
    let lost = app
        .submit(json!({"task_name": "sum", "a": 2, "b": 0}))
        .await;
    let pool = app.env.pool().await;
    // Both have waited far longer than the reconciler's quiet period.
    sqlx::query("UPDATE tasks SET dispatched_at = now() - interval '1 hour'")
        .execute(&pool)
        .await
        .unwrap();
    let key = app.services.keys.ready("default", "default");
    let mut redis = app.env.redis().await;
    let members: Vec<String> = redis.zrange(&key, 0, -1).await.unwrap();
    let lost_member = members
        .iter()
        .find(|m| m.contains(&lost.to_string()))
        .unwrap()
        .clone();
    let _: () = redis.zrem(&key, &lost_member).await.unwrap();

    app.start_worker().await;
    // The lost message comes back...
    eventually(|| async {
        let mut redis = app.env.redis().await;
        let score: Option<f64> = redis.zscore(&key, &lost_member).await.unwrap();
        score.map(drop)
    })
    .await;
    // ...in the same pass that found the other one still queued and left
    // its row alone.
    let stamped = |id: Uuid| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>(
                "SELECT dispatched_at > now() - interval '1 minute' FROM tasks WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert!(stamped(lost).await, "the lost task was re-dispatched");
    assert!(!stamped(waiting).await, "the queued task was not touched");
    let queued: u64 = app.services.queue.ready_len("default").await.unwrap();
    assert_eq!(queued, 2);
}

#[tokio::test]
async fn a_lost_message_behind_a_page_of_queued_ones_is_found() {
    let mut app = TestApp::spawn_with(|c| c.worker.queues = vec!["llm".to_owned()], false).await;
    // 600 tasks: more than one page of the reconciler's scan (500).
    let tasks: Vec<NewTask> = (0..600)
        .map(|i| new_task(&app, "sum", json!({"a": i, "b": 0})))
        .collect();
    app.services.store.insert_tasks(&tasks).await.unwrap();
    let pool = app.env.pool().await;
    // All waited long; the last in the scan's order is the one whose message is lost.
    sqlx::query(
        "UPDATE tasks SET dispatched_at = now() - interval '1 hour', \
         run_after = now() - interval '1 hour' + (task_parameters->>'a')::int * interval '1 ms'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let lost = tasks.last().unwrap().id;
    let messages: Vec<Message> = tasks[..599]
        .iter()
        .map(|t| Message::new(t.id, "sum", "default", None, None))
        .collect();
    app.services
        .queue
        .dispatch_many(messages.iter().map(|m| ("default", m)))
        .await
        .unwrap();

    app.start_worker().await;
    eventually(|| async {
        let queued = app.services.queue.ready_len("default").await.unwrap();
        (queued == 600).then_some(())
    })
    .await;
    let stamped: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM tasks WHERE dispatched_at > now() - interval '1 minute'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(stamped, vec![lost], "only the lost task was written");
}

#[tokio::test]
async fn two_reconcilers_stamping_the_same_lost_tasks_take_each_once() {
    let app = TestApp::spawn_api_only().await;
    let store = &app.services.store;
    let ids = stored_sum_tasks(&app, 60).await;
    let pool = app.env.pool().await;
    sqlx::query("UPDATE tasks SET dispatched_at = now() - interval '1 hour'")
        .execute(&pool)
        .await
        .unwrap();
    let reversed: Vec<Uuid> = ids.iter().rev().copied().collect();
    let quiet = Duration::from_secs(10);
    let (a, b) = tokio::join!(
        store.mark_dispatched(&ids, quiet),
        store.mark_dispatched(&reversed, quiet)
    );
    let (a, b) = (a.expect("no deadlock"), b.expect("no deadlock"));
    let mut taken: Vec<Uuid> = a.iter().chain(&b).map(|c| c.id).collect();
    taken.sort();
    assert_eq!(taken, ids, "each lost task is taken by one reconciler");
}

#[tokio::test]
async fn a_pass_whose_lost_tasks_were_all_claimed_meanwhile_sends_nothing_and_goes_on() {
    // One pass a minute, the first at the worker's start: within the
    // patience of `eventually`, only that first pass can delete the key below.
    let mut app = TestApp::spawn_with(
        |c| c.worker.reconcile_interval_seconds = 60.try_into().unwrap(),
        false,
    )
    .await;
    // Stored, never dispatched, long ago: lost, as far as the reconciler knows.
    let ids = stored_sum_tasks(&app, 3).await;
    let pool = app.env.pool().await;
    sqlx::query("UPDATE tasks SET dispatched_at = now() - interval '1 hour'")
        .execute(&pool)
        .await
        .unwrap();
    // The pass's last step deletes expired idempotency keys.
    sqlx::query(
        "INSERT INTO idempotency_keys (key, task_id, fingerprint, expires_at) \
         VALUES ('expired', $1, 'x', now() - interval '1 hour')",
    )
    .bind(ids[0])
    .execute(&pool)
    .await
    .unwrap();
    // Workers claim every one of them while the reconciler looks: held
    // here until the reconciler waits to stamp them, then claimed.
    let mut claim = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM tasks WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&ids)
        .execute(&mut *claim)
        .await
        .unwrap();
    app.start_worker().await;
    eventually(|| async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query LIKE '%SET dispatched_at = now() %'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (waiting > 0).then_some(())
    })
    .await;
    sqlx::query(
        "UPDATE tasks SET status = 'running', attempts = 1, started_at = now(), \
         lease_expires_at = now() + interval '1 hour' WHERE id = ANY($1)",
    )
    .bind(&ids)
    .execute(&mut *claim)
    .await
    .unwrap();
    claim.commit().await.unwrap();

    // The pass went on to its last step...
    wait_for_count(&pool, "SELECT count(*) FROM idempotency_keys", 0).await;
    // ...having sent nothing and changed nothing.
    assert_eq!(app.services.queue.ready_len("default").await.unwrap(), 0);
    let untouched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE status = 'running' AND attempts = 1 \
         AND dispatched_at < now() - interval '30 minutes'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(untouched, 3);
}
