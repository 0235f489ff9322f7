//! One scenario's run against one broker: connections, the recorded steps, and waits that are
//! not observations (a topic's leader elected, the group coordinator loaded), because Kafka
//! reaches those states asynchronously and Potok at once.

use std::collections::HashSet;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use potok_protocol::{ApiKey, Decode, Encode};
use serde_json::{json, Value};

use crate::common::wire::Client;
use crate::debug_json::to_json;

/// How long a single answer may take (JoinGroup waits for the rebalance).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a state the scenario waits for (not observes) may take to appear.
const WAIT: Duration = Duration::from_secs(30);

/// A scenario's connections to one broker and what it observed, in order.
pub struct Session {
    addr: String,
    /// The scenario's name; topic and group names start with it so scenarios never meet.
    pub name: String,
    conns: Vec<Option<Client>>,
    steps: Vec<Value>,
    labels: HashSet<String>,
}

impl Session {
    pub fn new(addr: &str, name: &str) -> Session {
        Session {
            addr: addr.to_string(),
            name: name.to_string(),
            conns: Vec::new(),
            steps: Vec::new(),
            labels: HashSet::new(),
        }
    }

    /// `{scenario}-{suffix}`: a topic or group name of this scenario.
    pub fn n(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }

    /// The observation: one entry per recorded step, not yet normalised.
    pub fn into_steps(self) -> Value {
        Value::Array(self.steps)
    }

    fn conn(&mut self, i: usize) -> &mut Client {
        while self.conns.len() <= i {
            self.conns.push(None);
        }
        let addr = self.addr.clone();
        self.conns[i].get_or_insert_with(|| Client::connect(&addr, READ_TIMEOUT))
    }

    /// Sends on connection `conn` without reading the answer (see [`Session::recv`]).
    pub fn send<M: Encode>(&mut self, conn: usize, key: ApiKey, v: i16, req: &M) {
        self.conn(conn).send(key, v, req);
    }

    /// Reads the answer on connection `conn` and records it as step `label`. `None` when the
    /// broker closed the connection (recorded as such; the next use reconnects).
    pub fn recv<R: Decode + Debug + Clone>(
        &mut self,
        conn: usize,
        label: &str,
        key: ApiKey,
        v: i16,
    ) -> Option<R> {
        self.recv_with(conn, label, key, v, |_| {})
    }

    /// [`Session::recv`], recording the answer as `trim` leaves it (e.g. without the topics
    /// of other scenarios); the caller gets the untrimmed answer.
    pub fn recv_with<R: Decode + Debug + Clone>(
        &mut self,
        conn: usize,
        label: &str,
        key: ApiKey,
        v: i16,
        trim: impl FnOnce(&mut R),
    ) -> Option<R> {
        let r = self.conn(conn).recv::<R>(key, v);
        let response = match &r {
            Ok(r) => {
                let mut shown = r.clone();
                trim(&mut shown);
                to_json(&shown)
            }
            Err(_) => {
                self.conns[conn] = None;
                json!("<connection closed>")
            }
        };
        self.record(label, &format!("{key:?} v{v}"), response);
        r.ok()
    }

    /// Sends `req` on connection 0 and records the answer as step `label`.
    pub fn call<M: Encode, R: Decode + Debug + Clone>(
        &mut self,
        label: &str,
        key: ApiKey,
        v: i16,
        req: &M,
    ) -> Option<R> {
        self.send(0, key, v, req);
        self.recv(0, label, key, v)
    }

    /// Sends `req` on a connection of its own and returns the answer without recording it
    /// (set-up and waits); panics when there is none.
    pub fn quiet<M: Encode, R: Decode>(&mut self, key: ApiKey, v: i16, req: &M) -> R {
        let mut c = Client::connect(&self.addr, READ_TIMEOUT);
        c.call(key, v, req)
    }

    fn record(&mut self, label: &str, api: &str, response: Value) {
        assert!(
            self.labels.insert(label.to_string()) && !label.contains('/'),
            "{}: step label {label:?} repeated or with '/'",
            self.name
        );
        self.steps
            .push(json!({ "step": label, "api": api, "response": response }));
    }

    /// Polls `probe` until it returns true; panics after 30 s with `what`.
    pub fn wait_until(&mut self, what: &str, mut probe: impl FnMut(&mut Session) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !probe(self) {
            assert!(
                Instant::now() < deadline,
                "{}: timed out waiting for {what}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
