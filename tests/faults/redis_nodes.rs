//! The Redis servers `.ci/redis-modes` starts, seen from the tests: which
//! master owns a slot, who subscribes, a node's process, and the faults
//! (SIGKILL, FLUSHALL) the tests inject into them.

use redis::Value as RedisValue;

/// A master of a cluster, as `CLUSTER SLOTS` describes it: host, port, id,
/// metadata.
type Node = (String, i64, String, RedisValue);

/// The port of the master owning `key`'s slot, from `CLUSTER SLOTS`.
pub async fn owner_of(cluster: &mut redis::cluster_async::ClusterConnection, key: &str) -> u16 {
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(cluster)
        .await
        .expect("CLUSTER KEYSLOT");
    // Each range: first slot, last slot, then the master and its replicas.
    let ranges: Vec<(i64, i64, Node)> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(cluster)
        .await
        .expect("CLUSTER SLOTS");
    ranges
        .into_iter()
        .find(|(first, last, _)| (*first..=*last).contains(&slot))
        .map(|(_, _, (_, port, ..))| u16::try_from(port).expect("a port"))
        .expect("an owner of the slot")
}

/// Subscribers of `channel` on the Redis server at `url`.
pub async fn subscribers_on(url: &str, channel: &str) -> i64 {
    let client = redis::Client::open(url).expect("node url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("node connection");
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut connection)
        .await
        .expect("PUBSUB NUMSUB");
    count
}

/// The process id of the Redis server at `url`.
pub async fn node_pid(url: &str) -> u32 {
    let client = redis::Client::open(url).expect("node url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("node connection");
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut connection)
        .await
        .expect("INFO server");
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .expect("process_id in INFO")
}

pub fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -KILL {pid}");
}

/// `host:port` of the master the sentinel at `sentinel` names now.
pub async fn master_addr(sentinel: &str, name: &str) -> String {
    let client = redis::Client::open(sentinel).expect("sentinel url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("sentinel connection");
    let (host, port): (String, String) = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(name)
        .query_async(&mut connection)
        .await
        .expect("SENTINEL GET-MASTER-ADDR-BY-NAME");
    format!("{host}:{port}")
}

/// The ports of every master serving slots now.
pub async fn master_ports(cluster: &mut redis::cluster_async::ClusterConnection) -> Vec<u16> {
    let ranges: Vec<(i64, i64, Node)> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(cluster)
        .await
        .expect("CLUSTER SLOTS");
    let mut ports: Vec<u16> = ranges
        .into_iter()
        .map(|(_, _, (_, port, ..))| u16::try_from(port).expect("a port"))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Every key of the Redis server at `url`, gone.
pub async fn flushall(url: &str) {
    let client = redis::Client::open(url).expect("node url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("node connection");
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut connection)
        .await
        .expect("FLUSHALL");
}
