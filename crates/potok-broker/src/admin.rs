//! The admin HTTP endpoint (`potok.admin.listener`): `GET /metrics` in the Prometheus text
//! format. A deliberately tiny HTTP/1.0-style server: one request per connection, request
//! head bounded to 8 KiB, everything else is 404.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Broker;

/// Serves admin requests until shutdown.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    let mut shutdown = broker.shutdown_signal();
    // A handful of scrapers at a time is plenty; more wait in the accept queue.
    let permits = Arc::new(tokio::sync::Semaphore::new(8));
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue } },
            _ = shutdown.changed() => return,
        };
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let b = Arc::clone(&broker);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle(b, stream)).await;
            drop(permit);
        });
    }
}

async fn handle(broker: Arc<Broker>, mut s: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 8192];
    let mut n = 0;
    while n < buf.len() {
        let r = s.read(&mut buf[n..]).await?;
        if r == 0 {
            break;
        }
        n += r;
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n")
            || buf[..n].windows(2).any(|w| w == b"\n\n")
        {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body) =
        if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
            (
                "200 OK",
                "text/plain; version=0.0.4",
                broker.metrics.render()
                    + &broker.groups.render_metrics(&broker)
                    + &broker.txn.render_metrics()
                    + &broker.topics.render_metrics()
                    + &crate::isr::render_metrics(&broker),
            )
        } else {
            (
                "404 Not Found",
                "text/plain",
                "not found; try /metrics\n".to_string(),
            )
        };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(resp.as_bytes()).await?;
    s.shutdown().await
}
