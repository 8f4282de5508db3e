//! A TCP proxy in front of PostgreSQL or Redis that a test can cut off and
//! restore, to play an outage without stopping the shared server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

pub struct FaultProxy {
    pub address: SocketAddr,
    up: Arc<AtomicBool>,
    /// When set, connections are accepted and held open, never answered:
    /// a server that stopped responding.
    hold: Arc<AtomicBool>,
    held: Arc<AtomicUsize>,
    connections: Arc<Mutex<JoinSet<()>>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let up = Arc::new(AtomicBool::new(true));
        let hold = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let target = target.to_owned();
        let acceptor = tokio::spawn({
            let (up, hold, held) = (up.clone(), hold.clone(), held.clone());
            let connections = connections.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client); // refused: the client sees the connection close at once
                        continue;
                    }
                    if hold.load(Ordering::SeqCst) {
                        held.fetch_add(1, Ordering::SeqCst);
                        connections.lock().await.spawn(async move {
                            let _client = client;
                            std::future::pending::<()>().await;
                        });
                        continue;
                    }
                    let target = target.clone();
                    connections.lock().await.spawn(pipe(client, target));
                }
            }
        });
        Self {
            address,
            up,
            hold,
            held,
            connections,
            acceptor,
        }
    }

    /// From now on, accept connections but never answer on them.
    pub async fn hang(&self) {
        self.hold.store(true, Ordering::SeqCst);
        self.connections.lock().await.abort_all();
    }

    /// Connections accepted and held since `hang`.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Cuts every open connection and refuses new ones.
    pub async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.connections.lock().await.abort_all();
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn pipe(mut client: TcpStream, target: String) {
    let Ok(mut server) = TcpStream::connect(&target).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
