//! Broker lifecycle on the active controller, as Kafka's `ClusterControlManager`,
//! `BrokerHeartbeatManager` and `ReplicationControlManager.processBrokerHeartbeat` have it:
//!
//! - **Registration** writes a `RegisterBrokerRecord` whose broker epoch is the record's own
//!   offset, fenced until the broker has caught up with the log. A registration under a
//!   `node.id` whose session is still alive with another incarnation id is
//!   `DUPLICATE_BROKER_REGISTRATION`; a restarted process (new incarnation, the same data) takes
//!   the id over and keeps its replicas.
//! - **Heartbeats** carry the broker epoch (`STALE_BROKER_EPOCH` when it is not the
//!   registration's). A fenced broker is unfenced once its `current_metadata_offset` reaches
//!   its registration's offset; a live one asks to shut down with `want_shut_down` and is moved
//!   through controlled shutdown.
//! - **Sessions**: a broker not heard from within `broker.session.timeout.ms` is fenced. The
//!   heartbeat times are soft state of the active controller, not log records; a newly active
//!   controller starts every broker's session afresh, as Kafka's does.
//!
//! Fencing, shutting down and re-registering take the broker out of ISRs and move its
//! leaderships in the same batch (KIP-841), through [`super::partitions`].

use potok_metadata::{BrokerId, BrokerRegistration, MetadataError, MetadataImage, MetadataRecord};
use potok_protocol::messages::broker_heartbeat_request::BrokerHeartbeatRequest;
use potok_protocol::messages::broker_heartbeat_response::BrokerHeartbeatResponse;
use potok_protocol::messages::broker_registration_request::BrokerRegistrationRequest;
use potok_protocol::messages::broker_registration_response::BrokerRegistrationResponse;
use potok_protocol::messages::internal::broker_registration_change_record::BrokerRegistrationChangeRecord;
use potok_protocol::messages::internal::fence_broker_record::FenceBrokerRecord;
use potok_protocol::messages::internal::register_broker_record::{
    BrokerEndpoint, BrokerFeature, RegisterBrokerRecord,
};
use potok_protocol::messages::internal::unfence_broker_record::UnfenceBrokerRecord;
use potok_protocol::ErrorCode;

use super::partitions::{self, Affected};
use super::{Active, ControllerConfig, MetadataOffset, PlantedBug, Reply, Staged};

/// Kafka's `metadata.version` feature name.
pub const METADATA_VERSION_FEATURE: &str = "metadata.version";

/// The `metadata.version` level Kafka assumes for a broker that does not name the feature
/// (`MetadataVersion.MINIMUM_KRAFT_VERSION`, 3.0-IV1).
const MINIMUM_KRAFT_METADATA_VERSION: i16 = 1;

/// The active controller's soft state of one broker's heartbeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// When the broker was last heard from (a registration or a heartbeat).
    pub last_contact_ms: u64,
    /// The metadata offset its last heartbeat reported (-1 before the first).
    pub metadata_offset: i64,
    /// Set while in controlled shutdown: the offset of the batch that moved its leaderships
    /// away. Every active broker must have applied it before this one may stop, so that no
    /// broker still routes to it (Kafka's `controlledShutdownOffset`).
    pub controlled_shutdown_offset: Option<MetadataOffset>,
}

impl Session {
    pub(crate) fn new(now_ms: u64) -> Session {
        Session {
            last_contact_ms: now_ms,
            metadata_offset: -1,
            controlled_shutdown_offset: None,
        }
    }
}

/// A broker's state as the heartbeat state machine sees it (Kafka's `BrokerControlState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Fenced,
    Unfenced,
    ControlledShutdown,
    ShutdownNow,
}

fn state_of(reg: &BrokerRegistration) -> State {
    if reg.fenced {
        State::Fenced
    } else if reg.in_controlled_shutdown {
        State::ControlledShutdown
    } else {
        State::Unfenced
    }
}

/// Kafka's `ClusterControlManager.checkBrokerEpoch`: the broker must be registered with
/// exactly this epoch.
pub(crate) fn epoch_matches(image: &MetadataImage, broker: i32, epoch: i64) -> bool {
    image
        .brokers()
        .get(&BrokerId(broker))
        .is_some_and(|r| r.epoch == epoch)
}

/// Whether `broker` leads any partition.
pub(crate) fn leads_any(image: &MetadataImage, broker: BrokerId) -> bool {
    image
        .topics()
        .any(|t| t.partitions.values().any(|p| p.leader == Some(broker)))
}

fn session_valid(active: &Active, reg: &BrokerRegistration, timeout_ms: u64, now_ms: u64) -> bool {
    // Kafka's `hasValidSession`: a fenced broker has none; an unfenced one until its last
    // contact is older than the session timeout.
    !reg.fenced
        && active
            .sessions
            .get(&reg.id)
            .is_some_and(|s| s.last_contact_ms.saturating_add(timeout_ms) >= now_ms)
}

/// BrokerRegistration.
pub(crate) fn register(
    staged: &mut Staged<'_>,
    config: &ControllerConfig,
    req: &BrokerRegistrationRequest,
    now_ms: u64,
) -> Result<Reply, MetadataError> {
    let refuse = |code: ErrorCode| {
        Ok(Reply::BrokerRegistration(BrokerRegistrationResponse {
            error_code: code as i16,
            broker_epoch: -1,
            ..Default::default()
        }))
    };
    if req.cluster_id != config.cluster_id {
        return refuse(ErrorCode::InconsistentClusterId);
    }
    // `node.id` is never negative (KafkaConfig refuses it), and -1 means "no broker" in records.
    if req.broker_id < 0 {
        return refuse(ErrorCode::InvalidRequest);
    }
    let id = BrokerId(req.broker_id);
    let existing = staged.image().brokers().get(&id).cloned();
    if let Some(reg) = &existing {
        if reg.incarnation_id != req.incarnation_id
            && session_valid(staged.active, reg, config.session_timeout_ms, now_ms)
        {
            return refuse(ErrorCode::DuplicateBrokerRegistration);
        }
    }
    // Every finalized feature level must be within what the broker supports
    // (`ClusterControlManager.processRegistrationFeature`); a broker that does not name
    // metadata.version supports only the first KRaft version.
    let mut features: Vec<BrokerFeature> = Vec::with_capacity(req.features.len() + 1);
    for f in &req.features {
        if let Some(level) = staged.image().feature_level(&f.name) {
            if !(f.min_supported_version..=f.max_supported_version).contains(&level) {
                return refuse(ErrorCode::UnsupportedVersion);
            }
        }
        features.push(BrokerFeature {
            name: f.name.clone(),
            min_supported_version: f.min_supported_version,
            max_supported_version: f.max_supported_version,
            ..Default::default()
        });
    }
    if !req
        .features
        .iter()
        .any(|f| f.name == METADATA_VERSION_FEATURE)
    {
        if let Some(level) = staged.image().feature_level(METADATA_VERSION_FEATURE) {
            if level != MINIMUM_KRAFT_METADATA_VERSION {
                return refuse(ErrorCode::UnsupportedVersion);
            }
        }
    }
    // The broker epoch is the offset of the record that registers it, as Kafka's
    // (`QuorumController.registerBroker` passes the next write offset): unique across the
    // cluster and growing with every registration.
    let epoch = staged.offset().0;
    staged.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: req.broker_id,
        is_migrating_zk_broker: false,
        incarnation_id: req.incarnation_id,
        broker_epoch: epoch,
        end_points: req
            .listeners
            .iter()
            .map(|l| BrokerEndpoint {
                name: l.name.clone(),
                host: l.host.clone(),
                port: l.port,
                security_protocol: l.security_protocol,
                ..Default::default()
            })
            .collect(),
        features,
        rack: req.rack.clone(),
        fenced: true,
        in_controlled_shutdown: false,
        log_dirs: req.log_dirs.clone(),
        ..Default::default()
    }))?;
    if existing.is_some() {
        // A new registration replaces a running one: the process restarted (or re-registered
        // after losing its epoch), and whatever it had not flushed may be gone. As Kafka's
        // `handleBrokerUncleanShutdown` (KIP-966), it leaves every ISR and leadership now
        // rather than when its old session expires; its replicas stay assigned, and its
        // leaders add it back to their ISRs once it has caught up.
        for r in partitions::leader_and_isr_updates(
            staged.image(),
            Some(id),
            None,
            Affected::WithBroker(id),
            &|t| partitions::unclean_enabled(staged.image(), config, t),
            false,
        ) {
            staged.push(r)?;
        }
    }
    staged.active.sessions.insert(id, Session::new(now_ms));
    Ok(Reply::BrokerRegistration(BrokerRegistrationResponse {
        error_code: 0,
        broker_epoch: epoch,
        ..Default::default()
    }))
}

/// Kafka's `handleBrokerFenced`: the broker leaves every ISR (the last member stays, KIP-841),
/// its leaderships move to other ISR members, and it is fenced. Nothing for a broker already
/// fenced.
pub(crate) fn fence(
    staged: &mut Staged<'_>,
    config: &ControllerConfig,
    id: BrokerId,
    bug: PlantedBug,
) -> Result<(), MetadataError> {
    let Some(reg) = staged.image().brokers().get(&id).cloned() else {
        return Ok(());
    };
    if reg.fenced {
        return Ok(());
    }
    for r in partitions::leader_and_isr_updates(
        staged.image(),
        Some(id),
        None,
        Affected::WithBroker(id),
        &|t| partitions::unclean_enabled(staged.image(), config, t),
        bug == PlantedBug::ElectOutsideIsr,
    ) {
        staged.push(r)?;
    }
    // Kafka's metadata versions since 3.3 write this as a BrokerRegistrationChangeRecord with
    // fenced = 1; the image applies both the same way.
    staged.push(MetadataRecord::FenceBroker(FenceBrokerRecord {
        id: id.0,
        epoch: reg.epoch,
        ..Default::default()
    }))?;
    if let Some(s) = staged.active.sessions.get_mut(&id) {
        // A fenced broker leaves controlled shutdown; its next heartbeat shuts it down.
        s.controlled_shutdown_offset = None;
    }
    Ok(())
}

/// The smallest metadata offset reported by an active broker (unfenced, not shutting down):
/// how far every broker that may lead has applied the log. `i64::MAX` when there is none.
fn lowest_active_offset(active: &Active) -> i64 {
    active
        .image
        .brokers()
        .values()
        .filter(|r| !r.fenced && !r.in_controlled_shutdown)
        .map(|r| active.sessions.get(&r.id).map_or(-1, |s| s.metadata_offset))
        .min()
        .unwrap_or(i64::MAX)
}

/// BrokerHeartbeat: Kafka's `calculateNextBrokerState` and the records of the transition.
pub(crate) fn heartbeat(
    staged: &mut Staged<'_>,
    config: &ControllerConfig,
    req: &BrokerHeartbeatRequest,
    now_ms: u64,
    bug: PlantedBug,
) -> Result<Reply, MetadataError> {
    let id = BrokerId(req.broker_id);
    let stale = || {
        Ok(Reply::BrokerHeartbeat(BrokerHeartbeatResponse {
            error_code: ErrorCode::StaleBrokerEpoch as i16,
            is_fenced: true,
            ..Default::default()
        }))
    };
    let Some(reg) = staged.image().brokers().get(&id).cloned() else {
        return stale();
    };
    if reg.epoch != req.broker_epoch && bug != PlantedBug::AcceptStaleBrokerEpoch {
        return stale();
    }
    // The registration's offset is its epoch.
    let registered_at = reg.epoch;
    let caught_up = req.current_metadata_offset >= registered_at;
    let current = state_of(&reg);
    // A controller that took over mid-shutdown knows no offset: everything written so far
    // must have been seen.
    let shutdown_offset = staged
        .active
        .sessions
        .get(&id)
        .and_then(|s| s.controlled_shutdown_offset)
        .unwrap_or_else(|| staged.last_offset());
    let next = match current {
        State::Fenced => {
            if req.want_shut_down || reg.in_controlled_shutdown {
                // A fenced broker may stop at once. One fenced while in controlled shutdown
                // (its session expired) was on its way out: it stops too, and comes back with
                // a new registration.
                State::ShutdownNow
            } else if !req.want_fence && caught_up {
                State::Unfenced
            } else {
                State::Fenced
            }
        }
        State::Unfenced => {
            if req.want_fence {
                if req.want_shut_down {
                    State::ShutdownNow
                } else {
                    State::Fenced
                }
            } else if req.want_shut_down {
                if leads_any(staged.image(), id) {
                    State::ControlledShutdown
                } else {
                    State::ShutdownNow
                }
            } else {
                State::Unfenced
            }
        }
        State::ControlledShutdown => {
            if leads_any(staged.image(), id)
                || lowest_active_offset(staged.active) < shutdown_offset.0
            {
                State::ControlledShutdown
            } else {
                State::ShutdownNow
            }
        }
        State::ShutdownNow => State::ShutdownNow,
    };
    if next != current {
        match next {
            State::Fenced | State::ShutdownNow => fence(staged, config, id, bug)?,
            State::Unfenced => {
                staged.push(MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
                    id: id.0,
                    epoch: req.broker_epoch,
                    ..Default::default()
                }))?;
                // Kafka's `handleBrokerUnfenced`: leaderless partitions it can lead get it.
                for r in partitions::leader_and_isr_updates(
                    staged.image(),
                    None,
                    Some(id),
                    Affected::WithoutLeader,
                    &|t| partitions::unclean_enabled(staged.image(), config, t),
                    bug == PlantedBug::ElectOutsideIsr,
                ) {
                    staged.push(r)?;
                }
            }
            State::ControlledShutdown => {
                // Kafka's `handleBrokerInControlledShutdown`: flagged, out of every ISR, its
                // leaderships moved, all in one batch.
                staged.push(MetadataRecord::BrokerRegistrationChange(
                    BrokerRegistrationChangeRecord {
                        broker_id: id.0,
                        broker_epoch: reg.epoch,
                        in_controlled_shutdown: 1,
                        ..Default::default()
                    },
                ))?;
                for r in partitions::leader_and_isr_updates(
                    staged.image(),
                    Some(id),
                    None,
                    Affected::WithBroker(id),
                    &|t| partitions::unclean_enabled(staged.image(), config, t),
                    bug == PlantedBug::ElectOutsideIsr,
                ) {
                    staged.push(r)?;
                }
            }
        }
    }
    let cs_now = match (current, next) {
        // Entering: the batch just built moves the leaderships.
        (State::Unfenced, State::ControlledShutdown) => Some(staged.offset()),
        (_, State::ControlledShutdown) => Some(shutdown_offset),
        _ => None,
    };
    let session = staged
        .active
        .sessions
        .entry(id)
        .or_insert_with(|| Session::new(now_ms));
    session.last_contact_ms = now_ms;
    session.metadata_offset = req.current_metadata_offset;
    session.controlled_shutdown_offset = cs_now;
    Ok(Reply::BrokerHeartbeat(BrokerHeartbeatResponse {
        error_code: 0,
        is_caught_up: caught_up,
        is_fenced: matches!(next, State::Fenced | State::ShutdownNow),
        should_shut_down: next == State::ShutdownNow,
        ..Default::default()
    }))
}

/// When the first unfenced broker's session expires (the instant after its last contact plus
/// the timeout).
pub(crate) fn next_expiry(active: &Active, timeout_ms: u64) -> Option<u64> {
    active
        .image
        .brokers()
        .values()
        .filter(|r| !r.fenced)
        .filter_map(|r| active.sessions.get(&r.id))
        .map(|s| {
            s.last_contact_ms
                .saturating_add(timeout_ms)
                .saturating_add(1)
        })
        .min()
}

/// Fences every unfenced broker whose session expired, one batch per broker (as Kafka's
/// `maybeFenceOneStaleBroker`, so that each fencing is visible before the next is decided).
pub(crate) fn expire_sessions(
    active: &mut Active,
    config: &ControllerConfig,
    now_ms: u64,
    bug: PlantedBug,
) -> Vec<Result<Vec<MetadataRecord>, MetadataError>> {
    if bug == PlantedBug::NeverExpireSessions {
        return Vec::new();
    }
    let expired: Vec<BrokerId> = active
        .image
        .brokers()
        .values()
        .filter(|r| !r.fenced)
        .filter(|r| {
            active.sessions.get(&r.id).is_some_and(|s| {
                s.last_contact_ms.saturating_add(config.session_timeout_ms) < now_ms
            })
        })
        .map(|r| r.id)
        .collect();
    let mut out = Vec::with_capacity(expired.len());
    for id in expired {
        let mut staged = Staged::new(active);
        match fence(&mut staged, config, id, bug) {
            Ok(()) => out.push(Ok(staged.finish())),
            Err(e) => {
                staged.rollback();
                out.push(Err(e));
            }
        }
    }
    out
}
