//! The relay's Prometheus metrics, in the text format the broker's `/metrics` uses, served by a
//! minimal HTTP listener (`--metrics-listener`): rows and batches published, the lag in rows,
//! bytes and seconds, and the replication slot's retained WAL.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counters and gauges, updated by the relay loop and read by the listener.
#[derive(Debug, Default)]
pub struct Metrics {
    pub rows_published: AtomicU64,
    pub batches_published: AtomicU64,
    pub retries: AtomicU64,
    /// Rows committed in the database and not yet published (poll: rows left in the table;
    /// logical: rows decoded and waiting for their batch).
    pub lag_rows: AtomicI64,
    /// Logical: WAL bytes between the server's current position and the last published commit.
    pub lag_bytes: AtomicI64,
    /// Milliseconds between the last published row's database commit (logical) or insertion
    /// (poll) and its publication.
    pub lag_ms: AtomicI64,
    /// Logical: WAL the slot holds back (`pg_current_wal_lsn() - confirmed_flush_lsn`).
    pub slot_retained_bytes: AtomicI64,
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut one = |name: &str, kind: &str, help: &str, v: i128| {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        };
        one(
            "potok_outbox_rows_published_total",
            "counter",
            "Outbox rows published in committed Kafka transactions.",
            self.rows_published.load(Ordering::Relaxed).into(),
        );
        one(
            "potok_outbox_batches_published_total",
            "counter",
            "Kafka transactions committed by the relay.",
            self.batches_published.load(Ordering::Relaxed).into(),
        );
        one(
            "potok_outbox_retries_total",
            "counter",
            "Reconnections after a broker or database failure.",
            self.retries.load(Ordering::Relaxed).into(),
        );
        one(
            "potok_outbox_lag_rows",
            "gauge",
            "Committed outbox rows not yet published.",
            self.lag_rows.load(Ordering::Relaxed).into(),
        );
        one(
            "potok_outbox_lag_bytes",
            "gauge",
            "WAL bytes between the server's position and the last published commit (logical).",
            self.lag_bytes.load(Ordering::Relaxed).into(),
        );
        one(
            "potok_outbox_lag_seconds",
            "gauge",
            "Seconds from the last published row's commit (logical) or insertion (poll) to its publication.",
            (self.lag_ms.load(Ordering::Relaxed) / 1000).into(),
        );
        one(
            "potok_outbox_slot_retained_bytes",
            "gauge",
            "WAL retained by the replication slot (logical).",
            self.slot_retained_bytes.load(Ordering::Relaxed).into(),
        );
        s
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped. Each connection gets one
/// response and is closed; a request is read with a size limit and a timeout.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let m = Arc::clone(&metrics);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while n < buf.len() {
                    let k = sock.read(&mut buf[n..]).await?;
                    if k == 0 {
                        break;
                    }
                    n += k;
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if head.starts_with("GET /metrics") {
                ("200 OK", m.render())
            } else {
                ("404 Not Found", "not found\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

impl Metrics {
    /// Records a committed batch of `rows`; `lag_ms` is the commit-to-publication delay of its
    /// last row when known.
    pub fn published(&self, rows: usize, lag_ms: Option<i64>) {
        self.rows_published
            .fetch_add(rows as u64, Ordering::Relaxed);
        self.batches_published.fetch_add(1, Ordering::Relaxed);
        if let Some(l) = lag_ms {
            self.lag_ms.store(l, Ordering::Relaxed);
        }
    }

    /// Sets the number of committed rows not yet published.
    pub fn set_lag_rows(&self, rows: i64) {
        self.lag_rows.store(rows, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_once() {
        let m = Metrics::default();
        m.rows_published.store(3, Ordering::Relaxed);
        m.lag_ms.store(2500, Ordering::Relaxed);
        let s = m.render();
        assert!(s.contains("\npotok_outbox_rows_published_total 3\n"), "{s}");
        assert!(s.contains("\npotok_outbox_lag_seconds 2\n"), "{s}");
        assert_eq!(s.matches("# TYPE").count(), 7);
    }
}
