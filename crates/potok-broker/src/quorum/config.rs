//! The quorum's settings, with Kafka's names: `controller.quorum.voters` (static voters,
//! `id@host:port,...`; KIP-853's dynamic quorums are out of scope), `controller.listener.names`,
//! the `CONTROLLER` entry of `listeners`, `process.roles`,
//! `controller.quorum.election.timeout.ms` and `controller.quorum.fetch.timeout.ms` (Kafka's
//! defaults, 1,000 and 2,000 ms), and `potok.cluster.id`, the cluster id every voter must
//! share.
//!
//! Kafka agrees on the cluster id outside the quorum: `kafka-storage format --cluster-id`
//! writes it into every node's `meta.properties` before the first start, and Raft requests
//! carrying another id are refused (INCONSISTENT_CLUSTER_ID). Potok does the same with a
//! setting instead of a separate format step: on first start a node stores `potok.cluster.id`
//! in `meta.properties`; afterwards a different setting refuses the start, and the transport
//! refuses peers whose handshake names another cluster.

use std::collections::BTreeMap;

use crate::error::{BrokerError, Result};

/// Kafka's default of `controller.quorum.election.timeout.ms`.
pub const DEFAULT_ELECTION_TIMEOUT_MS: &str = "1000";
/// Kafka's default of `controller.quorum.fetch.timeout.ms`.
pub const DEFAULT_FETCH_TIMEOUT_MS: &str = "2000";

/// The settings of a node that is a voter of the controller quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumSettings {
    /// Every voter: node id → `host:port` of its CONTROLLER listener.
    pub voters: BTreeMap<i32, String>,
    /// This node's CONTROLLER listener to bind (`host:port`); `None` on a broker-only node
    /// (an observer opens connections to the voters and listens for none).
    pub controller_listener: Option<String>,
    /// `process.roles=broker`: this node is an observer of the quorum (KIP-595, KIP-631's
    /// broker role), not a voter: it fetches the committed metadata log from the voters,
    /// registers as a broker and hosts replicas, but never votes nor becomes the controller.
    pub observer: bool,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`.
    pub fetch_timeout_ms: u64,
    /// `potok.cluster.id`.
    pub cluster_id: String,
    /// `broker.heartbeat.interval.ms` (Kafka's default 2,000): how often this broker sends
    /// BrokerHeartbeat to the active controller.
    pub heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms` (Kafka's default 9,000): the active controller fences a
    /// broker it has not heard from for this long.
    pub session_timeout_ms: u64,
    /// `auto.leader.rebalance.enable` (default true): the active controller gives partitions
    /// back to their preferred leader.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds` (default 300) in milliseconds.
    pub leader_imbalance_check_interval_ms: u64,
    /// The static `unclean.leader.election.enable` (default false); topic overrides and the
    /// dynamic cluster default take precedence.
    pub unclean_leader_election_enable: bool,
}

fn bad(name: &str, value: &str, why: &str) -> BrokerError {
    BrokerError::Config(format!("{name}={value}: {why}"))
}

/// Splits `listeners` into the client listeners (returned as text for the single PLAINTEXT
/// listener parser) and the controller listener's `host:port`, named by
/// `controller.listener.names` (default `CONTROLLER`).
pub(crate) fn split_listeners(
    value: &str,
    controller_names: Option<&str>,
) -> Result<(String, Option<String>)> {
    let names: Vec<&str> = controller_names
        .unwrap_or("CONTROLLER")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut client = Vec::new();
    let mut controller = None;
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        // An entry without a name is left to the client listener's parser, which names the
        // expected form in its error.
        let Some((name, addr)) = item.split_once("://") else {
            client.push(item);
            continue;
        };
        if names.contains(&name) {
            if controller.is_some() {
                return Err(bad(
                    "listeners",
                    value,
                    "only one controller listener is supported",
                ));
            }
            if !addr.contains(':') {
                return Err(bad("listeners", value, "expected CONTROLLER://host:port"));
            }
            controller = Some(addr.to_string());
        } else {
            client.push(item);
        }
    }
    Ok((client.join(","), controller))
}

impl QuorumSettings {
    /// The quorum settings from the configuration's values, `None` when
    /// `controller.quorum.voters` is not set (a single node with its own metadata log).
    pub(crate) fn parse<'a>(
        get: &impl Fn(&str) -> Option<&'a str>,
        node_id: i32,
        controller_listener: Option<String>,
    ) -> Result<Option<QuorumSettings>> {
        let Some(voters_text) = get("controller.quorum.voters").filter(|v| !v.trim().is_empty())
        else {
            if let Some(l) = controller_listener {
                return Err(BrokerError::Config(format!(
                    "listeners: the controller listener {l} needs controller.quorum.voters"
                )));
            }
            return Ok(None);
        };
        let mut voters = BTreeMap::new();
        for v in voters_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let why = "expected id@host:port,... (ids >= 1)";
            let (id, addr) = v
                .split_once('@')
                .ok_or_else(|| bad("controller.quorum.voters", voters_text, why))?;
            let id: i32 = id
                .parse()
                .ok()
                .filter(|&i| i >= 1)
                .ok_or_else(|| bad("controller.quorum.voters", voters_text, why))?;
            let port_ok = addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_ok {
                return Err(bad("controller.quorum.voters", voters_text, why));
            }
            if voters.insert(id, addr.to_string()).is_some() {
                return Err(bad(
                    "controller.quorum.voters",
                    voters_text,
                    "a voter id is listed twice",
                ));
            }
        }
        let roles = get("process.roles").unwrap_or("broker,controller");
        let mut r: Vec<&str> = roles.split(',').map(str::trim).collect();
        r.sort_unstable();
        let observer = match r.as_slice() {
            ["broker", "controller"] => false,
            ["broker"] => true,
            // A controller-only node would need the controller's work (CreateTopics, admin
            // writes) separated from the broker's: not yet.
            _ => {
                return Err(bad(
                    "process.roles",
                    roles,
                    "with controller.quorum.voters, expected broker,controller (combined mode) or broker (broker-only)",
                ))
            }
        };
        if observer {
            // Kafka's KafkaConfig refuses the same: a broker-only node is not a voter, and
            // its listeners carry no controller listener (clients never reach a controller).
            if voters.contains_key(&node_id) {
                return Err(BrokerError::Config(format!(
                    "node.id={node_id} is one of controller.quorum.voters={voters_text}: a \
                     broker-only node (process.roles=broker) must not be a voter"
                )));
            }
            if let Some(l) = &controller_listener {
                return Err(BrokerError::Config(format!(
                    "listeners: a broker-only node (process.roles=broker) has no controller \
                     listener ({l}); it connects to the voters of controller.quorum.voters"
                )));
            }
        } else {
            if !voters.contains_key(&node_id) {
                return Err(BrokerError::Config(format!(
                    "node.id={node_id} is not one of controller.quorum.voters={voters_text} \
                     (a node that is not a voter needs process.roles=broker)"
                )));
            }
            if controller_listener.is_none() {
                return Err(BrokerError::Config(
                    "a voter needs a controller listener in listeners (CONTROLLER://host:port, named by controller.listener.names)".into(),
                ));
            }
        }
        let ms = |name: &str, default: &str| -> Result<u64> {
            let v = get(name).unwrap_or(default);
            v.parse::<u64>()
                .ok()
                .filter(|&x| x >= 10)
                .ok_or_else(|| bad(name, v, "expected milliseconds >= 10"))
        };
        let election_timeout_ms = ms(
            "controller.quorum.election.timeout.ms",
            DEFAULT_ELECTION_TIMEOUT_MS,
        )?;
        let fetch_timeout_ms = ms(
            "controller.quorum.fetch.timeout.ms",
            DEFAULT_FETCH_TIMEOUT_MS,
        )?;
        let heartbeat_interval_ms = ms("broker.heartbeat.interval.ms", "2000")?;
        let session_timeout_ms = ms("broker.session.timeout.ms", "9000")?;
        let cluster_id = get("potok.cluster.id").unwrap_or_default().to_string();
        let id_ok = !cluster_id.is_empty()
            && cluster_id.len() <= 64
            && cluster_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(BrokerError::Config(format!(
                "potok.cluster.id=`{cluster_id}`: every voter needs the same cluster id (1 to 64 \
                 characters of [A-Za-z0-9_-]), as Kafka's `kafka-storage format --cluster-id`"
            )));
        }
        let auto_leader_rebalance_enable = crate::config::parse_bool(
            "auto.leader.rebalance.enable",
            get("auto.leader.rebalance.enable").unwrap_or("true"),
        )?;
        let interval = get("leader.imbalance.check.interval.seconds").unwrap_or("300");
        let leader_imbalance_check_interval_ms = interval
            .parse::<u64>()
            .ok()
            .filter(|&s| s >= 1)
            .map(|s| s.saturating_mul(1000))
            .ok_or_else(|| {
                bad(
                    "leader.imbalance.check.interval.seconds",
                    interval,
                    "expected seconds >= 1",
                )
            })?;
        let unclean_leader_election_enable = crate::config::parse_bool(
            "unclean.leader.election.enable",
            get("unclean.leader.election.enable").unwrap_or("false"),
        )?;
        Ok(Some(QuorumSettings {
            voters,
            controller_listener,
            observer,
            election_timeout_ms,
            fetch_timeout_ms,
            cluster_id,
            heartbeat_interval_ms,
            session_timeout_ms,
            auto_leader_rebalance_enable,
            leader_imbalance_check_interval_ms,
            unclean_leader_election_enable,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)], node: i32) -> Result<Option<QuorumSettings>> {
        let map: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        let (_, controller) = split_listeners(
            map.get("listeners")
                .copied()
                .unwrap_or("PLAINTEXT://127.0.0.1:9092"),
            map.get("controller.listener.names").copied(),
        )?;
        QuorumSettings::parse(&|k: &str| map.get(k).copied(), node, controller)
    }

    #[test]
    fn no_voters_is_a_single_node() {
        assert_eq!(parse(&[], 1).unwrap(), None);
        let e = parse(&[("listeners", "PLAINTEXT://a:1,CONTROLLER://a:2")], 1).unwrap_err();
        assert!(e.to_string().contains("controller.quorum.voters"), "{e}");
    }

    #[test]
    fn voters_listeners_and_timeouts() {
        let base = [
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:19093",
            ),
            (
                "controller.quorum.voters",
                "1@127.0.0.1:19093,2@127.0.0.1:19094,3@h:19095",
            ),
            ("potok.cluster.id", "abc_DEF-1"),
        ];
        let q = parse(&base, 2).unwrap().unwrap();
        assert_eq!(q.voters.len(), 3);
        assert_eq!(q.voters[&3], "h:19095");
        assert_eq!(q.controller_listener.as_deref(), Some("127.0.0.1:19093"));
        assert!(!q.observer);
        assert_eq!((q.election_timeout_ms, q.fetch_timeout_ms), (1000, 2000));
        assert!(parse(&base, 4)
            .unwrap_err()
            .to_string()
            .contains("not one of"));
        // A broker-only node: not a voter, no controller listener.
        let mut roles = base.to_vec();
        roles.push(("process.roles", "broker"));
        let e = parse(&roles, 1).unwrap_err().to_string();
        assert!(e.contains("must not be a voter"), "{e}");
        let e = parse(&roles, 4).unwrap_err().to_string();
        assert!(e.contains("no controller listener"), "{e}");
        roles[0] = ("listeners", "PLAINTEXT://127.0.0.1:9092");
        let o = parse(&roles, 4).unwrap().unwrap();
        assert!(o.observer && o.controller_listener.is_none());
        assert_eq!(o.voters.len(), 3);
        for other in ["controller", "broker,observer", ""] {
            let mut b = base.to_vec();
            b.push(("process.roles", other));
            assert!(parse(&b, 1).is_err(), "{other}");
        }
        let mut no_id = base.to_vec();
        no_id.retain(|(k, _)| *k != "potok.cluster.id");
        assert!(parse(&no_id, 1)
            .unwrap_err()
            .to_string()
            .contains("cluster id"));
        for bad_voters in ["1@h", "0@h:1", "x@h:1", "1@h:1,1@h:2", "1@:5"] {
            let mut b = base.to_vec();
            b[1] = ("controller.quorum.voters", bad_voters);
            assert!(parse(&b, 1).is_err(), "{bad_voters}");
        }
        let mut named = base.to_vec();
        named[0] = ("listeners", "PLAINTEXT://127.0.0.1:9092,RAFT://127.0.0.1:7");
        named.push(("controller.listener.names", "RAFT"));
        assert_eq!(
            parse(&named, 1)
                .unwrap()
                .unwrap()
                .controller_listener
                .as_deref(),
            Some("127.0.0.1:7")
        );
        let (client, _) = split_listeners("PLAINTEXT://a:1,CONTROLLER://a:2", None).unwrap();
        assert_eq!(client, "PLAINTEXT://a:1");
        // The controller's leader settings: Kafka's defaults, then overrides.
        assert!(q.auto_leader_rebalance_enable && !q.unclean_leader_election_enable);
        assert_eq!(q.leader_imbalance_check_interval_ms, 300_000);
        let mut leaders = base.to_vec();
        leaders.push(("auto.leader.rebalance.enable", "false"));
        leaders.push(("leader.imbalance.check.interval.seconds", "2"));
        leaders.push(("unclean.leader.election.enable", "true"));
        let q = parse(&leaders, 1).unwrap().unwrap();
        assert!(!q.auto_leader_rebalance_enable && q.unclean_leader_election_enable);
        assert_eq!(q.leader_imbalance_check_interval_ms, 2_000);
        for (k, v) in [
            ("leader.imbalance.check.interval.seconds", "0"),
            ("auto.leader.rebalance.enable", "yes"),
        ] {
            let mut b = base.to_vec();
            b.push((k, v));
            assert!(parse(&b, 1).unwrap_err().to_string().contains(k), "{k}={v}");
        }
    }
}
