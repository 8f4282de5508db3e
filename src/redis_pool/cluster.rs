//! Redis Cluster: one multiplexed cluster connection per process (it keeps
//! a connection per node, follows the slot map and retries on `MOVED`),
//! pipelines split by hash slot, and the node list for subscribers.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::try_join_all;
use redis::aio::ConnectionLike;
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot};
use redis::{Arg, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, Value};

use super::{RedisError, bounded};

/// The cluster of one process.
pub struct Cluster {
    client: ClusterClient,
    seed: ConnectionInfo,
    shared: Mutex<Option<ClusterConnection>>,
    timeout: Duration,
}

impl Cluster {
    /// Knows the cluster by its seed nodes (`url`: one URL, or several
    /// separated by commas, so a process can start while one is down);
    /// connects on first use.
    pub fn new(url: &str, timeout: Duration) -> redis::RedisResult<Self> {
        let seeds = url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(IntoConnectionInfo::into_connection_info)
            .collect::<redis::RedisResult<Vec<_>>>()?;
        let Some(seed) = seeds.first().cloned() else {
            return Err((redis::ErrorKind::InvalidClientConfig, "no seed node").into());
        };
        let client = ClusterClient::builder(seeds)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()?;
        Ok(Self {
            client,
            seed,
            shared: Mutex::new(None),
            timeout,
        })
    }

    /// The shared connection (cheap to clone), made on first use.
    pub async fn connection(&self) -> Result<Split, RedisError> {
        let existing = self
            .shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(connection) = existing {
            return Ok(Split(connection));
        }
        let connection = bounded(self.timeout, self.client.get_async_connection()).await?;
        *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = Some(connection.clone());
        Ok(Split(connection))
    }

    /// Whether the shared connection is made.
    pub fn is_connected(&self) -> bool {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// A connection of its own, for blocking commands.
    pub async fn dedicated(&self, response_timeout: Duration) -> Result<Split, RedisError> {
        let config = ClusterConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(response_timeout);
        let connection = bounded(
            self.timeout,
            self.client.get_async_connection_with_config(config),
        )
        .await?;
        Ok(Split(connection))
    }

    /// Where a subscriber may connect, best first: the (first) seed, then
    /// every node the cluster lists as healthy (`CLUSTER NODES`). Classic
    /// `PUBLISH` reaches subscribers on every node.
    pub async fn nodes(&self) -> Vec<ConnectionInfo> {
        let listed = async {
            let mut connection = self.connection().await?;
            let reply = bounded(
                self.timeout,
                connection.0.route_command(
                    redis::cmd("CLUSTER").arg("NODES").clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                ),
            )
            .await?;
            Ok::<_, RedisError>(redis::from_redis_value::<String>(reply).unwrap_or_default())
        };
        let listing = listed.await.unwrap_or_default();
        let others = healthy_nodes(&listing)
            .into_iter()
            .map(|(host, port)| ConnectionAddr::Tcp(host, port))
            .filter(|addr| addr != self.seed.addr())
            .map(|addr| self.seed.clone().set_addr(addr));
        std::iter::once(self.seed.clone()).chain(others).collect()
    }
}

/// Host and port of every node of a `CLUSTER NODES` listing that is not
/// failing (`<id> <ip:port@cport[,hostname]> <flags> ...`).
fn healthy_nodes(listing: &str) -> Vec<(String, u16)> {
    listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            let bad = ["fail", "fail?", "noaddr", "handshake"];
            if flags.split(',').any(|flag| bad.contains(&flag)) {
                return None;
            }
            let (host, port) = address.split(['@', ',']).next()?.rsplit_once(':')?;
            let port = port.parse().ok()?;
            (!host.is_empty()).then(|| (host.to_owned(), port))
        })
        .collect()
}

/// A cluster connection whose pipelines may span hash slots: each slot's
/// commands go as one pipeline to the node owning it, all at once, and the
/// replies come back in the pipeline's order. (The cluster connection
/// itself sends a whole pipeline to one node.) Transactions are not split.
#[derive(Clone)]
pub struct Split(pub ClusterConnection);

impl ConnectionLike for Split {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> redis::RedisFuture<'a, Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let groups = by_slot(pipeline);
            if pipeline.is_transaction() || groups.len() < 2 {
                return self.0.req_packed_commands(pipeline, offset, count).await;
            }
            let sent = groups.iter().map(|(part, _)| {
                let mut connection = self.0.clone();
                async move { connection.req_packed_commands(part, 0, part.len()).await }
            });
            let replies = try_join_all(sent).await?;
            let mut values = vec![Value::Nil; pipeline.len()];
            for ((_, indices), reply) in groups.iter().zip(replies) {
                for (index, value) in indices.iter().zip(reply) {
                    values[*index] = value;
                }
            }
            Ok(values)
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// The commands of `pipeline` grouped by the slot of their key, each group
/// with the commands' positions; commands without a key join the first group.
pub fn by_slot(pipeline: &Pipeline) -> Vec<(Pipeline, Vec<usize>)> {
    let mut groups: Vec<(Option<Slot>, Pipeline, Vec<usize>)> = Vec::new();
    for (index, cmd) in pipeline.cmd_iter().enumerate() {
        let slot = slot_of(cmd);
        let at = groups
            .iter()
            .position(|(s, ..)| slot.is_none() || s.is_none() || *s == slot);
        match at {
            Some(at) => {
                let group = &mut groups[at];
                group.0 = group.0.or(slot);
                group.1.add_command(cmd.clone());
                group.2.push(index);
            }
            None => {
                let mut part = redis::pipe();
                part.add_command(cmd.clone());
                groups.push((slot, part, vec![index]));
            }
        }
    }
    groups
        .into_iter()
        .map(|(_, part, indices)| (part, indices))
        .collect()
}

/// The slot of a command's (first) key; `None` for commands without one.
pub fn slot_of(cmd: &Cmd) -> Option<Slot> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|arg| match arg {
            Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    let name = args.first()?.to_ascii_uppercase();
    let key = match name.as_slice() {
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" => {
            let keys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            if keys == 0 {
                return None;
            }
            args.get(3)?
        }
        b"PING" | b"INFO" | b"CLUSTER" | b"CONFIG" | b"SCRIPT" | b"TIME" => return None,
        _ => args.get(1)?,
    };
    Some(Slot::for_key(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_is_split_by_slot_keeping_each_command_s_place() {
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg("{a}:1").arg(1);
        pipe.cmd("SET").arg("{b}:1").arg(1);
        pipe.cmd("PING");
        pipe.cmd("SET").arg("{a}:2").arg(1);
        let groups = by_slot(&pipe);
        let positions: Vec<Vec<usize>> = groups.into_iter().map(|(_, at)| at).collect();
        assert_eq!(positions, [vec![0, 2, 3], vec![1]]);
    }

    #[test]
    fn a_script_is_placed_by_its_first_key() {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg("abc")
            .arg(2)
            .arg("{q:x}:tenants")
            .arg("{q:x}:paused");
        assert_eq!(slot_of(&cmd), Some(Slot::for_key("q:x")));
        let mut keyless = redis::cmd("EVALSHA");
        keyless.arg("abc").arg(0);
        assert_eq!(slot_of(&keyless), None);
    }

    #[test]
    fn seeds_may_be_listed_with_commas() {
        let cluster = Cluster::new(
            "redis://127.0.0.1:7101, redis://127.0.0.1:7102",
            Duration::from_secs(1),
        );
        assert!(cluster.is_ok_and(|c| c.seed.addr().to_string() == "127.0.0.1:7101"));
        assert!(Cluster::new(" , ", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn failing_nodes_are_not_offered_to_subscribers() {
        let listing = "\
a1 127.0.0.1:7101@17101 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7102@17102,host master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7103@17103 master,fail - 0 0 3 connected 10923-16383
d4 :0@0 master,noaddr - 0 0 4 disconnected
";
        assert_eq!(
            healthy_nodes(listing),
            [
                ("127.0.0.1".to_owned(), 7101),
                ("127.0.0.1".to_owned(), 7102)
            ]
        );
    }
}
