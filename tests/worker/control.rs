//! Cancel and pause hold through a worker killed with SIGKILL.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fake_llm::{FakeLlm, Reply};
use crate::support::processes::Cluster;
use crate::support::{TestEnv, eventually};

#[tokio::test]
async fn cancel_and_pause_survive_a_worker_killed_with_sigkill() {
    let llm = FakeLlm::start(vec![Reply::ok("never").slow(Duration::from_secs(120))]).await;
    let env = TestEnv::new().await;
    let client = reqwest::Client::new();
    let lease = Duration::from_secs(2);
    let settings = [
        ("TASKER_LLM__BASE_URL", llm.base_url()),
        ("TASKER_LLM__API_KEY", "sk-test".to_owned()),
        ("TASKER_WORKER__LEASE_SECONDS", lease.as_secs().to_string()),
    ];
    let mut cluster = Cluster::start(&env, "control-sigkill", 1, &settings, &client).await;
    let api = cluster.api.url("");
    let post = |path: String, body: Value| {
        let client = client.clone();
        async move {
            let response = client.post(path).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let task = |id: String| {
        let client = client.clone();
        let url = format!("{api}/tasks/{id}");
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };

    let (status, body) = post(
        format!("{api}/run-task"),
        json!({"task_name": "query_llm", "prompt": "slow"}),
    )
    .await;
    assert_eq!(status, 202);
    let slow = body["task_uuid"].as_str().unwrap().to_owned();
    eventually(|| async { (llm.received().len() == 1).then_some(()) }).await;
    let (status, cancelled) = post(format!("{api}/tasks/{slow}/cancel"), json!({})).await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled"))
    );
    let (status, _) = post(format!("{api}/queues/default/pause"), json!({})).await;
    assert_eq!(status, 200);
    let mut held = Vec::new();
    for i in 0..3 {
        let (_, body) = post(
            format!("{api}/run-task"),
            json!({"task_name": "sum", "a": i, "b": 1}),
        )
        .await;
        held.push(body["task_uuid"].as_str().unwrap().to_owned());
    }

    cluster.workers[0].sigkill();
    cluster.workers[0].restart();
    cluster.workers[0].wait_ready(&client).await;
    // The restarted worker is at work (this runs on the other queue)...
    let (_, body) = post(
        format!("{api}/run-task"),
        json!({"task_name": "query_llm", "prompt": "probe"}),
    )
    .await;
    let probe = body["task_uuid"].as_str().unwrap().to_owned();
    eventually(|| async { (task(probe.clone()).await["status"] == "completed").then_some(()) })
        .await;
    // ...and past the killed attempt's lease and a few reconciler passes,
    // nothing brought the cancelled task back or ran a paused one. (Time is
    // the only witness that something did not happen.)
    tokio::time::sleep(lease * 3).await;
    let after = task(slow.clone()).await;
    assert_eq!(after["status"], "cancelled", "{after}");
    assert_eq!(after["attempts"], 1, "{after}");
    for id in &held {
        let waiting = task(id.clone()).await;
        assert_eq!(
            (waiting["status"].as_str(), waiting["attempts"].as_i64()),
            (Some("pending"), Some(0)),
            "{waiting}"
        );
    }

    let (status, _) = post(format!("{api}/queues/default/resume"), json!({})).await;
    assert_eq!(status, 200);
    for id in held {
        eventually(|| async { (task(id.clone()).await["status"] == "completed").then_some(()) })
            .await;
    }
}
