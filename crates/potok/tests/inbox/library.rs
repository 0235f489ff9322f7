//! `Inbox::process` and `Inbox::prune_expired` in this process against a real PostgreSQL, with
//! hand-made messages (no broker is contacted: the consumer never subscribes, and its
//! asynchronous offset commit has nowhere to go, which the inbox tolerates by design).

use std::time::Duration;

use potok_inbox::{Inbox, InboxConfig, InboxError, Outcome};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};

use crate::common::postgres::Postgres;

fn msg(partition: i32, offset: i64, id: Option<&str>) -> OwnedMessage {
    let headers = id.map(|v| {
        OwnedHeaders::new().insert(Header {
            key: "id",
            value: Some(v),
        })
    });
    OwnedMessage::new(
        Some(b"v".to_vec()),
        Some(b"k".to_vec()),
        "t".into(),
        Timestamp::NotAvailable,
        partition,
        offset,
        headers,
    )
}

fn count(pg: &Postgres, sql: &str) -> i64 {
    pg.psql(sql).trim().parse().expect("count")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Duplicates (same header id at another offset) skip the handler; a handler error stores
/// nothing; the stored offset never moves back.
#[test]
fn process_skips_duplicates_and_rolls_back_failed_handlers() {
    let pg = Postgres::start();
    pg.psql("CREATE TABLE effects (ref text NOT NULL)");
    let mut cfg = InboxConfig::new(&pg.conninfo(), "127.0.0.1:9", "g");
    cfg.id_header = Some("id".into());
    runtime().block_on(async {
        Inbox::create_schema(&cfg).await.expect("schema");
        let mut inbox = Inbox::connect(cfg).await.expect("connect");
        let effect = async |tx: &tokio_postgres::Transaction<'_>, r: &str| {
            tx.execute("INSERT INTO effects VALUES ($1)", &[&r]).await?;
            Ok::<_, tokio_postgres::Error>(r.len())
        };
        let got = inbox
            .process(&msg(0, 10, Some("a")), async |tx| effect(tx, "a").await)
            .await
            .expect("first");
        assert_eq!(got, Outcome::Processed(1));
        // The same id again, later in the log: a duplicate; the offset still advances.
        let got = inbox
            .process(&msg(0, 20, Some("a")), async |tx| {
                effect(tx, "a-again").await
            })
            .await
            .expect("duplicate");
        assert_eq!(got, Outcome::Duplicate);
        // No header: the id is the position, so the same position is a duplicate.
        let got = inbox
            .process(&msg(1, 5, None), async |tx| effect(tx, "p1").await)
            .await
            .expect("no header");
        assert_eq!(got, Outcome::Processed(2));
        let got = inbox
            .process(&msg(1, 5, None), async |tx| effect(tx, "p1-again").await)
            .await
            .expect("same position");
        assert_eq!(got, Outcome::Duplicate);
        // A failing handler: its write, the inbox row and the offset are all rolled back.
        let err = inbox
            .process(&msg(1, 6, Some("b")), async |tx| {
                tx.execute("INSERT INTO effects VALUES ('b')", &[]).await?;
                tx.execute("SELECT 1/0", &[]).await?;
                Ok::<_, tokio_postgres::Error>(())
            })
            .await
            .expect_err("handler error");
        assert!(
            matches!(&err, InboxError::Handler { message_id, .. } if message_id == "h:b"),
            "{err}"
        );
        // An older message of partition 0 (a consumer that lost the partition) does not move
        // the stored offset back.
        let got = inbox
            .process(&msg(0, 3, Some("c")), async |tx| effect(tx, "c").await)
            .await
            .expect("older");
        assert_eq!(got, Outcome::Processed(1));
    });
    assert_eq!(
        pg.psql("SELECT string_agg(ref, ',' ORDER BY ref) FROM effects")
            .trim(),
        "a,c,p1"
    );
    assert_eq!(
        pg.psql("SELECT string_agg(message_id, ',' ORDER BY message_id) FROM inbox")
            .trim(),
        "h:a,h:c,o:t/1/5"
    );
    assert_eq!(
        pg.psql(
            "SELECT string_agg(\"partition\" || ':' || next_offset, ',' ORDER BY \"partition\") \
             FROM inbox_offsets WHERE consumer_group = 'g'"
        )
        .trim(),
        "0:21,1:6"
    );
}

/// Rows older than the retention go, in batches, for this group only.
#[test]
fn prune_deletes_expired_rows_of_the_group() {
    let pg = Postgres::start();
    let mut cfg = InboxConfig::new(&pg.conninfo(), "127.0.0.1:9", "g");
    cfg.retention = Duration::from_secs(7 * 24 * 3600);
    pg.psql(&potok_inbox::schema_sql("inbox", "inbox_offsets").expect("schema"));
    // 25,000 expired rows (more than two delete batches), 3 recent ones, 2 expired of another
    // group.
    pg.psql(
        "INSERT INTO inbox SELECT 'g', 'old-' || i, 't', 0, i, now() - interval '8 days' \
         FROM generate_series(1, 25000) i",
    );
    pg.psql(
        "INSERT INTO inbox SELECT 'g', 'new-' || i, 't', 0, i, now() - interval '6 days' \
         FROM generate_series(1, 3) i",
    );
    pg.psql(
        "INSERT INTO inbox SELECT 'other', 'old-' || i, 't', 0, i, now() - interval '30 days' \
         FROM generate_series(1, 2) i",
    );
    let pruned = runtime().block_on(async {
        let inbox = Inbox::connect(cfg).await.expect("connect");
        inbox.prune_expired().await.expect("prune")
    });
    assert_eq!(pruned, 25_000);
    assert_eq!(
        count(&pg, "SELECT count(*) FROM inbox WHERE consumer_group = 'g'"),
        3
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM inbox WHERE consumer_group = 'other'"
        ),
        2
    );
}
