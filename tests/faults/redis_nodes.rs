//! The Redis servers `.ci/redis-modes` starts, seen from the tests: which
//! master owns a slot, who subscribes, a node's process, and the faults
//! (SIGKILL, FLUSHALL) the tests inject into them.

use redis::Value as RedisValue;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;

/// A master of a cluster, as `CLUSTER SLOTS` describes it: host, port, id,
/// metadata.
type Node = (String, i64, String, RedisValue);

/// A connection to the one Redis server (node, master or sentinel) at `url`.
async fn node(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("node url")
        .get_multiplexed_async_connection()
        .await
        .expect("node connection")
}

/// Every slot range of the cluster with the port of the master serving it.
async fn slot_owners(cluster: &mut ClusterConnection) -> Vec<(i64, i64, u16)> {
    // Each range: first slot, last slot, then the master and its replicas.
    let ranges: Vec<(i64, i64, Node)> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(cluster)
        .await
        .expect("CLUSTER SLOTS");
    ranges
        .into_iter()
        .map(|(first, last, (_, port, ..))| (first, last, u16::try_from(port).expect("a port")))
        .collect()
}

/// The port of the master owning `key`'s slot.
pub async fn owner_of(cluster: &mut ClusterConnection, key: &str) -> u16 {
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(cluster)
        .await
        .expect("CLUSTER KEYSLOT");
    slot_owners(cluster)
        .await
        .into_iter()
        .find(|(first, last, _)| (*first..=*last).contains(&slot))
        .map(|(_, _, port)| port)
        .expect("an owner of the slot")
}

/// The ports of every master serving slots now.
pub async fn master_ports(cluster: &mut ClusterConnection) -> Vec<u16> {
    let mut ports: Vec<u16> = slot_owners(cluster)
        .await
        .into_iter()
        .map(|(_, _, port)| port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Subscribers of `channel` on the Redis server at `url`.
pub async fn subscribers_on(url: &str, channel: &str) -> i64 {
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut node(url).await)
        .await
        .expect("PUBSUB NUMSUB");
    count
}

/// The process id of the Redis server at `url`.
pub async fn node_pid(url: &str) -> u32 {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut node(url).await)
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
    let (host, port): (String, String) = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(name)
        .query_async(&mut node(sentinel).await)
        .await
        .expect("SENTINEL GET-MASTER-ADDR-BY-NAME");
    format!("{host}:{port}")
}

/// Every key of the Redis server at `url`, gone.
pub async fn flushall(url: &str) {
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut node(url).await)
        .await
        .expect("FLUSHALL");
}
