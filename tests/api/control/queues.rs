//! Pausing queues and the queues' figures.

use super::*;

#[tokio::test]
async fn a_paused_queue_keeps_its_tasks_pending_until_resumed() {
    let llm = FakeLlm::start(Vec::new()).await;
    let mut app = TestApp::spawn_with(|c| llm.configure(c), true).await;
    let queues = app.get_json("/queues").await;
    let names: Vec<&str> = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["default", "llm"]);
    assert_eq!(queues["queues"][0]["paused"], false);

    let paused = app.post_json("/queues/default/pause", json!({})).await;
    assert_eq!(paused.status(), 200);
    let paused: Value = paused.json().await.unwrap();
    assert_eq!(paused["paused"], true);
    assert!(paused["paused_at"].is_string());
    assert_eq!(
        metric(
            &app.metrics().await,
            r#"tasker_queue_paused{queue="default"}"#
        ),
        Some(1.0)
    );
    let unknown = app.post_json("/queues/nope/pause", json!({})).await;
    assert_eq!(unknown.status(), 404);

    let held: Vec<Uuid> = {
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(
                app.submit(json!({"task_name": "sum", "a": i, "b": 1}))
                    .await,
            );
        }
        ids
    };
    // The other queue runs meanwhile.
    let other = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    assert_eq!(app.wait_terminal(other).await["status"], "completed");
    let figures = app.get_json("/queues").await;
    assert_eq!(figures["queues"][0]["depth"], 5, "{figures}");

    // The worker restarts, then the flag vanishes from Redis (a flush): the
    // pause holds, since PostgreSQL keeps it and the worker read it there.
    app.stop_worker(0).await;
    app.start_worker().await;
    let mut redis = app.env.redis().await;
    let _: () = redis::cmd("DEL")
        .arg(app.services.keys.paused("default"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let proof = app
        .submit(json!({"task_name": "query_llm", "prompt": "after restart"}))
        .await;
    assert_eq!(app.wait_terminal(proof).await["status"], "completed");
    // Twice the reconcile interval and the pause refresh: nothing moved.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in &held {
        assert_eq!(stored(&app, *id).await.0, "pending");
    }
    let flag: Option<String> = redis::cmd("GET")
        .arg(app.services.keys.paused("default"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(flag.is_some(), "the worker set the flag again");

    let resumed = app.post_json("/queues/default/resume", json!({})).await;
    assert_eq!(resumed.json::<Value>().await.unwrap()["paused"], false);
    for id in held {
        assert_eq!(app.wait_terminal(id).await["status"], "completed");
    }
    assert_eq!(
        metric(
            &app.metrics().await,
            r#"tasker_queue_paused{queue="default"}"#
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn queue_figures_show_running_tasks_and_the_age_of_the_oldest_waiting_one() {
    let llm = FakeLlm::start(vec![Reply::ok("never").slow(Duration::from_secs(60))]).await;
    let app = TestApp::spawn_with(|c| llm.configure(c), true).await;
    let figures = |name: &'static str| {
        let app = &app;
        async move {
            let queues = app.get_json("/queues").await;
            queues["queues"]
                .as_array()
                .unwrap()
                .iter()
                .find(|q| q["name"] == name)
                .unwrap_or_else(|| panic!("no queue {name} in {queues}"))
                .clone()
        }
    };
    for name in ["default", "llm"] {
        let queue = figures(name).await;
        assert_eq!(
            (
                &queue["depth"],
                &queue["running"],
                &queue["oldest_age_seconds"]
            ),
            (&json!(0), &json!(0), &json!(0.0)),
            "{queue}"
        );
    }

    // A long LLM call runs in its queue, and only there.
    let slow = app
        .submit(json!({"task_name": "query_llm", "prompt": "slow"}))
        .await;
    app.wait_status(slow, "running").await;
    let llm_queue = figures("llm").await;
    assert_eq!(
        (&llm_queue["running"], &llm_queue["depth"]),
        (&json!(1), &json!(0)),
        "{llm_queue}"
    );
    assert_eq!(figures("default").await["running"], 0);

    // A paused queue holds what is submitted to it, and its oldest task ages.
    let paused = app.post_json("/queues/default/pause", json!({})).await;
    assert_eq!(paused.status(), 200);
    let submitted = Instant::now();
    for i in 0..3 {
        app.submit(json!({"task_name": "sum", "a": i, "b": 1}))
            .await;
    }
    let held = eventually(|| async {
        let queue = figures("default").await;
        (queue["oldest_age_seconds"].as_f64()? >= 0.05).then_some(queue)
    })
    .await;
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE queue = 'default' AND status = 'pending'",
    )
    .fetch_one(&app.env.pool().await)
    .await
    .unwrap();
    assert_eq!((waiting, &held["depth"]), (3, &json!(3)), "{held}");
    assert_eq!(held["running"], 0, "{held}");
    let age = held["oldest_age_seconds"].as_f64().unwrap();
    assert!(
        age <= submitted.elapsed().as_secs_f64(),
        "the oldest task is {age}s old, submitted {:?} ago",
        submitted.elapsed()
    );
    eventually(|| async {
        let older = figures("default").await["oldest_age_seconds"].as_f64()?;
        (older > age).then_some(())
    })
    .await;

    // Stopped, the long call no longer counts as running.
    assert_eq!(cancel(&app, slow).await.status(), 200);
    assert_eq!(figures("llm").await["running"], 0);
}
