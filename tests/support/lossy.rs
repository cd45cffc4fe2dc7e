//! [`losing_first_answer`]: a TCP proxy that lets the first request through and loses its
//! answer, as a connection reset on the way back does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A proxy in front of `first` and `then` (base URLs): the first connection goes to `first`,
/// which gets the request and runs it, and both sides are dropped once its answer starts, so
/// the caller never has it; every later connection goes to `then` (a balancer sending a retry
/// to another replica, or the same server). Returns the proxy's base URL and the number of
/// connections it has accepted.
pub async fn losing_first_answer(first: &str, then: &str) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let first = first.trim_start_matches("http://").to_owned();
    let then = then.trim_start_matches("http://").to_owned();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            let lose = counted.fetch_add(1, Ordering::SeqCst) == 0;
            let upstream = if lose { &first } else { &then };
            let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
            tokio::spawn(async move {
                if lose {
                    let mut buf = vec![0u8; 64 * 1024];
                    let n = client.read(&mut buf).await.unwrap();
                    server.write_all(&buf[..n]).await.unwrap();
                    // The answer starts; both sides are dropped unanswered.
                    let _ = server.read(&mut buf).await;
                } else {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (format!("http://{addr}"), connections)
}
