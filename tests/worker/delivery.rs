//! At-least-once delivery made harmless: claims, fencing, duplicates, and
//! re-dispatch of lost messages.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;
use tasker::domain::NewTask;
use tasker::queue::Message;
use uuid::Uuid;

use crate::support::fake_llm::{FakeLlm, Reply};
use crate::support::{TestApp, eventually};

fn new_task(app: &TestApp, name: &str, params: serde_json::Value) -> NewTask {
    let mut body = params;
    body["task_name"] = name.into();
    crate::support::new_task(&app.services, body)
}

#[tokio::test]
async fn the_same_task_delivered_twice_runs_once() {
    let llm = FakeLlm::start(vec![Reply::ok("once")]).await;
    let mut app = TestApp::spawn_with(|c| llm.configure(c), false).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    // A second, distinct message for the same task (as a re-dispatch would add).
    let duplicate = Message::new(id, "query_llm", "default", Some("duplicate"), None);
    app.services
        .queue
        .dispatch("llm", &duplicate)
        .await
        .unwrap();
    let queued: u64 = app.services.queue.ready_len("llm").await.unwrap();
    assert_eq!(queued, 2);

    app.start_worker().await;
    let task = app.wait_terminal(id).await;
    eventually(|| async {
        (app.services.queue.ready_len("llm").await.unwrap() == 0).then_some(())
    })
    .await;
    assert_eq!(task["status"], "completed");
    assert_eq!(task["attempts"], 1);
    assert_eq!(llm.received().len(), 1, "the LLM was called once");
}

#[tokio::test]
async fn a_message_for_a_finished_task_changes_nothing() {
    let app = TestApp::spawn().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    let done = app.wait_terminal(id).await;
    let again = Message::new(id, "sum", "default", None, None);
    app.services
        .queue
        .dispatch("default", &again)
        .await
        .unwrap();
    eventually(|| async {
        (app.services.queue.ready_len("default").await.unwrap() == 0).then_some(())
    })
    .await;
    let pool = app.env.pool().await;
    let (attempts, output): (i32, serde_json::Value) =
        sqlx::query_as("SELECT attempts, task_output FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert_eq!(output, done["task_output"]);
}

#[tokio::test]
async fn undecodable_messages_are_dropped_and_work_goes_on() {
    let app = TestApp::spawn().await;
    let key = app.services.keys.ready("default", "default");
    let _: () = app
        .env
        .redis()
        .await
        .zadd(&key, "{not a message", 0)
        .await
        .unwrap();
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    assert_eq!(app.wait_terminal(id).await["status"], "completed");
}

#[tokio::test]
async fn only_one_of_many_concurrent_claims_wins() {
    let app = TestApp::spawn_api_only().await;
    let store = app.services.store.clone();
    let task = store
        .insert_task(&new_task(&app, "sum", json!({"a": 1, "b": 2})))
        .await
        .unwrap();
    let claims = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim(task.id, Duration::from_secs(30)).await.unwrap() })
    });
    let mut winners = 0;
    for claim in claims {
        if claim.await.unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn a_stale_attempt_can_never_overwrite_a_newer_one() {
    let app = TestApp::spawn_api_only().await;
    let store = &app.services.store;
    let pool = app.env.pool().await;
    let task = store
        .insert_task(&new_task(&app, "sum", json!({"a": 1, "b": 2})))
        .await
        .unwrap();
    let first = store
        .claim(task.id, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.attempt, 1);
    // The first worker's lease is given to a second one.
    sqlx::query("UPDATE tasks SET status = 'pending' WHERE id = $1")
        .bind(task.id)
        .execute(&pool)
        .await
        .unwrap();
    let second = store
        .claim(task.id, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.attempt, 2);

    let stale = store
        .complete(task.id, first.attempt, &json!({"result": "stale"}))
        .await
        .unwrap();
    assert!(stale.is_none(), "the stale attempt is fenced off");
    let fresh = store
        .complete(task.id, second.attempt, &json!({"result": 3}))
        .await
        .unwrap();
    assert_eq!(
        fresh.map(|r| r.task_output),
        Some(Some(json!({"result": 3})))
    );
    let late = store
        .fail(task.id, second.attempt, "late duplicate")
        .await
        .unwrap();
    assert!(late.is_none(), "a finished task is never written again");
    let stored = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(stored.task_output, Some(json!({"result": 3})));
    assert!(stored.error.is_none());
}

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
async fn one_claim_statement_takes_only_the_pending_tasks_of_a_batch() {
    let app = TestApp::spawn_api_only().await;
    let store = &app.services.store;
    let ids = stored_sum_tasks(&app, 5).await;
    // One is already running elsewhere; one id names no task at all.
    let taken = store.claim(ids[0], Duration::from_secs(30)).await.unwrap();
    assert!(taken.is_some());
    let mut batch = ids.clone();
    batch.push(Uuid::now_v7());
    let claimed = store
        .claim_many(&batch, Duration::from_secs(30))
        .await
        .unwrap();
    let mut claimed_ids: Vec<Uuid> = claimed.iter().map(|c| c.id).collect();
    claimed_ids.sort();
    assert_eq!(claimed_ids, ids[1..].to_vec());
    assert!(claimed.iter().all(|c| c.attempt == 1));
    // Claimed once means claimed: a second batch gets nothing.
    let again = store
        .claim_many(&ids, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(again.is_empty());
}

#[tokio::test]
async fn one_outcome_statement_writes_each_attempt_fenced_on_its_own() {
    use tasker::store::{FinalOutcome, FinalWrite};
    let app = TestApp::spawn_api_only().await;
    let store = &app.services.store;
    let mut claimed = Vec::new();
    for id in stored_sum_tasks(&app, 3).await {
        claimed.push(
            store
                .claim(id, Duration::from_secs(30))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let writes = vec![
        FinalWrite {
            id: claimed[0].id,
            attempt: claimed[0].attempt,
            outcome: FinalOutcome::Completed(json!({"result": 0})),
        },
        FinalWrite {
            id: claimed[1].id,
            attempt: claimed[1].attempt,
            outcome: FinalOutcome::Failed("boom".into()),
        },
        // A stale attempt: fenced off, while the others in the statement land.
        FinalWrite {
            id: claimed[2].id,
            attempt: claimed[2].attempt + 1,
            outcome: FinalOutcome::Completed(json!({"result": "stale"})),
        },
    ];
    let written = store.finish_many(&writes).await.unwrap();
    assert_eq!(written.len(), 2);
    let first = store.get_task(claimed[0].id).await.unwrap().unwrap();
    assert_eq!(first.status.as_str(), "completed");
    assert_eq!(first.task_output, Some(json!({"result": 0})));
    assert!(first.error.is_none() && first.completed_at.is_some());
    let second = store.get_task(claimed[1].id).await.unwrap().unwrap();
    assert_eq!(second.status.as_str(), "failed");
    assert_eq!(second.error.as_deref(), Some("boom"));
    assert!(second.task_output.is_none());
    let third = store.get_task(claimed[2].id).await.unwrap().unwrap();
    assert_eq!(
        third.status.as_str(),
        "running",
        "the stale write changed nothing"
    );
    // Written once means written: the same statement again writes nothing.
    assert!(store.finish_many(&writes).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_bad_row_fails_only_its_own_submission_in_a_group_commit() {
    let app = TestApp::spawn_api_only().await;
    let intake =
        tasker::services::Intake::new(app.services.store.clone(), app.services.queue.clone(), 1);
    let mut bad = new_task(&app, "sum", json!({"a": 1, "b": 1}));
    // Longer than the column allows: PostgreSQL rejects this row.
    bad.task_name = "x".repeat(101);
    let mut tasks: Vec<NewTask> = (0..20)
        .map(|i| new_task(&app, "sum", json!({"a": i, "b": 0})))
        .collect();
    tasks.insert(7, bad.clone());
    let submissions: Vec<_> = tasks
        .iter()
        .map(|task| {
            let (intake, task) = (intake.clone(), task.clone());
            tokio::spawn(async move { intake.submit(task).await })
        })
        .collect();
    for (task, submission) in tasks.iter().zip(submissions) {
        let result = submission.await.unwrap();
        assert_eq!(result.is_ok(), task.id != bad.id, "{result:?}");
    }
    let pool = app.env.pool().await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 20);
    // Every stored task was dispatched; the rejected one was not.
    assert_eq!(app.services.queue.ready_len("default").await.unwrap(), 20);
}

#[tokio::test]
async fn a_worker_pops_a_batch_across_queues_in_one_call() {
    let app = TestApp::spawn_api_only().await;
    let keys = app.services.keys.clone();
    let queues = vec!["default".to_owned(), "llm".to_owned()];
    for (queue, count) in [("default", 3), ("llm", 4)] {
        for _ in 0..count {
            let message = Message::new(Uuid::now_v7(), "sum", "default", None, None);
            app.services.queue.dispatch(queue, &message).await.unwrap();
        }
    }
    let mut consumer = tasker::queue::Consumer::new(
        &app.services.redis,
        &keys,
        &queues,
        Duration::from_secs(2),
        Duration::from_millis(100),
    )
    .unwrap();
    // The first call starts with `default`, drains it, and fills up from `llm`.
    let first = popped_queues(&mut consumer, 5).await;
    assert_eq!(first, ["default", "default", "default", "llm", "llm"]);
    // The next call starts with `llm`.
    let second = popped_queues(&mut consumer, 5).await;
    assert_eq!(second, ["llm", "llm"]);
    // Empty queues: the call blocks for its block time and returns nothing.
    assert!(consumer.next_batch(5, &[], &[]).await.unwrap().is_empty());
}

/// Stores `count` pending `sum` tasks (not dispatched); returns their ids.
async fn stored_sum_tasks(app: &TestApp, count: i64) -> Vec<Uuid> {
    let store = &app.services.store;
    let mut ids = Vec::new();
    for i in 0..count {
        let task = store
            .insert_task(&new_task(app, "sum", json!({"a": i, "b": 0})))
            .await
            .unwrap();
        ids.push(task.id);
    }
    ids
}

/// The queue of each message one `next_batch(max)` call took, in order.
async fn popped_queues(consumer: &mut tasker::queue::Consumer, max: usize) -> Vec<String> {
    let popped = consumer.next_batch(max, &[], &[]).await.unwrap();
    popped
        .into_iter()
        .map(|popped| match popped {
            tasker::queue::Popped::Message { queue, .. } => queue,
            tasker::queue::Popped::Garbage { queue, .. } => queue,
        })
        .collect()
}

#[tokio::test]
async fn dispatching_nothing_sends_nothing_and_succeeds() {
    let app = TestApp::spawn_api_only().await;
    let none: Vec<(&str, &Message)> = Vec::new();
    assert_eq!(app.services.queue.dispatch_many(none).await.unwrap(), 0);
}

#[tokio::test]
async fn a_quick_task_delivered_many_times_at_once_runs_once() {
    let mut app = TestApp::spawn_api_only().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    // Distinct members for one task, as repeated re-dispatches would add.
    for i in 0..5 {
        let duplicate = Message::new(id, "sum", "default", Some(&format!("duplicate-{i}")), None);
        app.services
            .queue
            .dispatch("default", &duplicate)
            .await
            .unwrap();
    }
    app.start_worker().await;
    app.start_worker().await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(task["attempts"], 1, "{task}");
    assert_eq!(task["task_output"], json!({"result": 3}));
    eventually(|| async {
        (app.services.queue.ready_len("default").await.unwrap() == 0).then_some(())
    })
    .await;
    let again = app.task(id).await;
    assert_eq!(again["attempts"], 1, "no duplicate ran it again: {again}");
}

#[tokio::test]
async fn a_quick_claim_holds_its_tasks_and_writes_each_outcome_once() {
    use tasker::store::{QuickOutcome, QuickWrite};
    let app = TestApp::spawn_api_only().await;
    let store = &app.services.store;
    let ids = stored_sum_tasks(&app, 3).await;
    let claim = store.claim_quick(&ids).await.unwrap();
    assert_eq!(claim.tasks.len(), 3);
    assert!(claim.tasks.iter().all(|t| t.attempt == 1));
    // Another worker's quick claim skips what this one holds.
    let other = store.claim_quick(&ids).await.unwrap();
    assert!(other.tasks.is_empty());
    drop(other);
    let writes = vec![
        QuickWrite {
            id: ids[0],
            outcome: QuickOutcome::Completed(json!({"result": 1e16})),
        },
        QuickWrite {
            id: ids[1],
            outcome: QuickOutcome::Failed("boom".into()),
        },
        QuickWrite {
            id: ids[2],
            outcome: QuickOutcome::Retry {
                error: "busy".into(),
                delay: std::time::Duration::from_secs(60),
            },
        },
    ];
    let records = claim.finish(&writes).await.unwrap();
    assert_eq!(records.len(), 3);
    let done = store.get_task(ids[0]).await.unwrap().unwrap();
    assert_eq!(done.status.as_str(), "completed");
    assert_eq!(done.attempts, 1);
    assert!(
        done.task_output.unwrap()["result"].is_f64(),
        "a float stays a float"
    );
    assert!(done.started_at.is_some() && done.completed_at.is_some());
    let failed = store.get_task(ids[1]).await.unwrap().unwrap();
    assert_eq!(failed.status.as_str(), "failed");
    assert_eq!(failed.error.as_deref(), Some("boom"));
    let retry = store.get_task(ids[2]).await.unwrap().unwrap();
    assert_eq!(retry.status.as_str(), "pending");
    assert_eq!(retry.attempts, 1);
    assert_eq!(retry.error.as_deref(), Some("busy"));
    assert!(
        retry
            .next_attempt_at
            .is_some_and(|at| at > chrono::Utc::now())
    );
    // Finished is finished: a second claim finds nothing pending but the retry.
    let again = store.claim_quick(&ids).await.unwrap();
    assert_eq!(
        again.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[2]]
    );
    assert_eq!(
        again.tasks[0].attempt, 2,
        "the attempt number keeps growing"
    );
}

#[tokio::test]
async fn a_quick_claim_dropped_unfinished_leaves_its_tasks_pending() {
    let app = TestApp::spawn_api_only().await;
    let store = &app.services.store;
    let ids = stored_sum_tasks(&app, 2).await;
    let claim = store.claim_quick(&ids).await.unwrap();
    assert_eq!(claim.tasks.len(), 2);
    drop(claim);
    for id in &ids {
        let task = store.get_task(*id).await.unwrap().unwrap();
        assert_eq!(task.status.as_str(), "pending");
        assert_eq!(task.attempts, 0);
    }
    assert_eq!(store.claim_quick(&ids).await.unwrap().tasks.len(), 2);
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
    eventually(|| async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
        (left == 0).then_some(())
    })
    .await;
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
