//! Leases: renewed while an attempt runs, recovered when a worker is lost,
//! handed back at shutdown; a lost lease stops its attempt.

use std::time::Duration;

use serde_json::json;
use tasker::config::Config;
use tasker::domain::NewTask;

use crate::support::fake_llm::{FakeLlm, Reply};
use crate::support::{TestApp, eventually, metric};

fn with_llm(llm: &FakeLlm, lease_seconds: u64, grace_seconds: u64) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        llm.configure(c);
        c.worker.lease_seconds = lease_seconds.try_into().unwrap();
        c.worker.shutdown_grace_seconds = grace_seconds;
    }
}

fn sum_task(app: &TestApp, max_attempts: i32) -> NewTask {
    let mut task =
        crate::support::new_task(&app.services, json!({"task_name": "sum", "a": 1, "b": 1}));
    task.max_attempts = max_attempts;
    task
}

#[tokio::test]
async fn a_long_attempt_keeps_its_lease_alive() {
    let llm = FakeLlm::start(vec![
        Reply::ok("slow but fine").slow(Duration::from_millis(3500)),
    ])
    .await;
    let app = TestApp::spawn_with(with_llm(&llm, 2, 20), true).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(
        task["attempts"], 1,
        "the lease was renewed, never recovered"
    );
    assert_eq!(llm.received().len(), 1);
}

#[tokio::test]
async fn a_task_whose_worker_died_is_recovered_and_run_again() {
    let app = TestApp::spawn_api_only().await;
    let store = &app.services.store;
    let task = store.insert_task(&sum_task(&app, 3)).await.unwrap();
    // A worker claims it with a short lease and dies.
    let claimed = store
        .claim(task.id, Duration::from_millis(200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.attempt, 1);
    let mut app = app;
    app.start_worker().await;
    let done = app.wait_terminal(task.id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["attempts"], 2);
    assert_eq!(done["task_output"], json!({"result": 2}));
    let page = app.worker_metrics().await;
    let recovered = metric(
        &page,
        "tasker_tasks_recovered_total{reason=\"lease_expired\"}",
    );
    assert!(recovered >= Some(1.0), "{page}");
}

#[tokio::test]
async fn a_task_that_keeps_losing_its_worker_ends_failed() {
    let app = TestApp::spawn_api_only().await;
    let store = &app.services.store;
    let task = store.insert_task(&sum_task(&app, 1)).await.unwrap();
    store
        .claim(task.id, Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    let mut app = app;
    app.start_worker().await;
    let failed = app.wait_terminal(task.id).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["attempts"], 1);
    assert!(
        failed["error"].as_str().unwrap().contains("worker lost"),
        "{failed}"
    );
}

#[tokio::test]
async fn an_attempt_that_lost_its_lease_stops_and_its_result_is_never_written() {
    let replies = vec![
        Reply::ok("stale").slow(Duration::from_secs(4)),
        Reply::ok("fresh"),
    ];
    let llm = FakeLlm::start(replies).await;
    let app = TestApp::spawn_with(with_llm(&llm, 2, 20), true).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    app.wait_status(id, "running").await;
    eventually(|| async { (!llm.received().is_empty()).then_some(()) }).await;
    // Another worker takes the task over (its claim bumps the fencing token).
    let pool = app.env.pool().await;
    sqlx::query("UPDATE tasks SET attempts = attempts + 1 WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();

    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(
        task["task_output"]["text"], "fresh",
        "the stale attempt never wrote"
    );
    assert_eq!(task["attempts"], 3);
    let metrics = app
        .client
        .get(app.worker_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tasker_task_stale_results_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_tasks_finish_within_the_grace_period() {
    let llm = FakeLlm::start(vec![
        Reply::ok("finished").slow(Duration::from_millis(1500)),
    ])
    .await;
    let mut app = TestApp::spawn_with(with_llm(&llm, 30, 10), false).await;
    let worker = app.start_worker().await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    app.wait_status(id, "running").await;
    app.stop_worker(worker).await;
    let task = app.task(id).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(task["attempts"], 1);
}

#[tokio::test]
async fn shutdown_hands_back_what_cannot_finish_and_another_worker_takes_it_at_once() {
    let llm = FakeLlm::start(vec![
        Reply::ok("too slow").slow(Duration::from_secs(30)),
        Reply::ok("second worker"),
    ])
    .await;
    let mut app = TestApp::spawn_with(with_llm(&llm, 60, 1), false).await;
    let first = app.start_worker().await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    app.wait_status(id, "running").await;
    app.stop_worker(first).await;

    let handed_back = app.task(id).await;
    assert_eq!(
        handed_back["status"], "pending",
        "never marked failed: {handed_back}"
    );
    assert_eq!(handed_back["attempts"], 1);
    let budget = crate::support::retry_budget("query_llm");
    assert_eq!(
        handed_back["max_attempts"],
        budget + 1,
        "a hand-back does not use up a retry"
    );
    assert!(handed_back["error"].is_null());

    // Far sooner than the 60 s lease: the task was dispatched again at once.
    app.start_worker().await;
    let started = std::time::Instant::now();
    let task = app.wait_terminal(id).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(task["status"], "completed");
    assert_eq!(task["task_output"]["text"], "second worker");
    assert_eq!(task["attempts"], 2);
}

#[tokio::test]
async fn heartbeats_and_outcome_writes_on_the_same_rows_never_deadlock() {
    use tasker::store::{FinalOutcome, FinalWrite, Lease};
    let app = TestApp::spawn_api_only().await;
    let store = &app.services.store;
    // Rounds of: claim a batch twice at once (in opposite orders, as two
    // workers given the same messages), then renew its leases (in one
    // order) while writing its outcomes (in another) and handing it back
    // (in a third) at the same time, as a worker's heartbeat, its outcome
    // writer and its shutdown do.
    for round in 0..15 {
        let mut ids = Vec::new();
        for i in 0..60 {
            let task = crate::support::new_task(
                &app.services,
                json!({"task_name": "sum", "a": i, "b": round}),
            );
            ids.push(store.insert_task(&task).await.unwrap().id);
        }
        let reversed: Vec<_> = ids.iter().rev().copied().collect();
        let lease = Duration::from_secs(30);
        let (first, second) = tokio::join!(
            store.claim_many(&ids, lease),
            store.claim_many(&reversed, lease)
        );
        let mut claimed = first.expect("claims do not deadlock");
        claimed.extend(second.expect("claims do not deadlock"));
        assert_eq!(claimed.len(), ids.len(), "every task is claimed once");
        let mut leases: Vec<Lease> = claimed
            .iter()
            .map(|c| Lease {
                task_id: c.id,
                attempt: c.attempt,
            })
            .collect();
        leases.sort_by_key(|l| std::cmp::Reverse(l.task_id));
        // Odd positions first, then even: yet another order.
        let handed: Vec<Lease> = leases
            .iter()
            .skip(1)
            .step_by(2)
            .chain(leases.iter().step_by(2))
            .copied()
            .collect();
        let writes: Vec<FinalWrite> = claimed
            .iter()
            .map(|c| FinalWrite {
                id: c.id,
                attempt: c.attempt,
                outcome: FinalOutcome::Completed(json!({"result": 0})),
            })
            .collect();
        let (first_half, second_half) = writes.split_at(writes.len() / 2);
        let renew = store.renew_leases(&leases, lease);
        let finish_a = store.finish_many(first_half);
        let finish_b = store.finish_many(second_half);
        let hand_back = store.hand_back(&handed);
        let (renewed, a, b, back) = tokio::join!(renew, finish_a, finish_b, hand_back);
        let renewed = renewed.expect("the heartbeat does not deadlock");
        let finished = a.expect("outcome writes do not deadlock").len()
            + b.expect("outcome writes do not deadlock").len();
        let handed_back = back.expect("the hand-back does not deadlock").len();
        assert_eq!(
            finished + handed_back,
            ids.len(),
            "every task is either finished or handed back, once"
        );
        assert!(renewed.len() <= ids.len());
    }
}
