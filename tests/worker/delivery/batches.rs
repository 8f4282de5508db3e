//! Batched statements and pops, and the quick path: each task in a batch
//! claimed, written and delivered as if alone.

use super::*;

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
async fn quick_tasks_popped_while_others_are_written_share_the_next_transaction() {
    // One slot: quick tasks give it back once popped, so a worker of
    // concurrency 1 still writes them many to a transaction.
    let mut app =
        TestApp::spawn_with(|c| c.worker.concurrency = 1.try_into().unwrap(), false).await;
    let tasks = 300;
    for chunk in 0..tasks / 100 {
        let batch: Vec<Value> = (0..100)
            .map(|i| json!({"task_name": "sum", "a": chunk * 100 + i, "b": 1}))
            .collect();
        let response = app.post_json("/run-tasks", json!({"tasks": batch})).await;
        assert_eq!(response.status(), 202);
    }
    app.start_worker().await;
    let pool = app.env.pool().await;
    wait_for_count(
        &pool,
        "SELECT count(*) FROM tasks WHERE status = 'completed'",
        tasks,
    )
    .await;
    // A quick transaction stamps its tasks' `started_at` with its own start;
    // one slot used to mean one task per transaction.
    let (transactions, largest): (i64, i64) = sqlx::query_as(
        "SELECT count(*), max(n) FROM \
         (SELECT count(*) AS n FROM tasks GROUP BY started_at) AS per_transaction",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        largest >= 2 && transactions < tasks,
        "{tasks} quick tasks took {transactions} transactions, at most {largest} in one"
    );
    let sums: Vec<Value> = sqlx::query_scalar("SELECT task_output FROM tasks")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        sums.iter().all(|output| output["result"].is_number()),
        "{sums:?}"
    );
}
