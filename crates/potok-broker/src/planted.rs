//! Test-only planted bugs (issue 18, acceptance 3): switches that make a real broker behave
//! like a known-broken replication implementation, so that tests can show the fault harness
//! catches the bug on real processes, as the simulations show it for their models.
//!
//! The switch is the environment variable `POTOK_TEST_PLANTED_BUG`, read once at start, and
//! only by debug builds (the binary the tests run): a release build refuses to start with it
//! set rather than ignore it, so that nobody believes a production broker was tested with a
//! bug it cannot have. It is not a broker setting, so DescribeConfigs never shows it.

use crate::error::{BrokerError, Result};

/// The environment variable that plants a bug.
pub const ENV: &str = "POTOK_TEST_PLANTED_BUG";

/// The bugs a test may plant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlantedBug {
    /// A correct broker.
    #[default]
    None,
    /// `elect-outside-isr`: the active controller elects any live replica, not only ISR
    /// members (what `unclean.leader.election.enable` allows knowingly, here silently).
    ElectOutsideIsr,
    /// `truncate-to-high-watermark`: a follower that learns of a new leader cuts its log at
    /// its high watermark, as Kafka did before KIP-101, instead of letting the new leader's
    /// epochs decide.
    TruncateToHighWatermark,
    /// `act-on-pending-shrink`: a leader treats the smaller ISR it proposes as committed at
    /// once (high watermark, `acks=all`, `min.insync.replicas`), instead of using the maximal
    /// ISR until the controller commits it (KIP-497).
    ActOnPendingShrink,
}

/// The bug of this process, set once by [`PlantedBug::from_env`] at start: the ISR driver
/// reads it here rather than having it threaded through every call for a test's sake.
static ACTIVE: std::sync::OnceLock<PlantedBug> = std::sync::OnceLock::new();

/// The bug planted in this process ([`PlantedBug::None`] unless a test set one).
pub fn active() -> PlantedBug {
    ACTIVE.get().copied().unwrap_or_default()
}

impl PlantedBug {
    /// The bug `value` names (empty: none).
    pub fn parse(value: &str) -> Result<PlantedBug> {
        match value {
            "" => Ok(PlantedBug::None),
            "elect-outside-isr" => Ok(PlantedBug::ElectOutsideIsr),
            "truncate-to-high-watermark" => Ok(PlantedBug::TruncateToHighWatermark),
            "act-on-pending-shrink" => Ok(PlantedBug::ActOnPendingShrink),
            other => Err(BrokerError::Config(format!(
                "{ENV}=`{other}`: expected elect-outside-isr, truncate-to-high-watermark or \
                 act-on-pending-shrink"
            ))),
        }
    }

    /// The bug the environment plants, refused by release builds.
    pub fn from_env() -> Result<PlantedBug> {
        let value = std::env::var(ENV).unwrap_or_default();
        let bug = PlantedBug::parse(&value)?;
        if bug != PlantedBug::None && !cfg!(debug_assertions) {
            return Err(BrokerError::Config(format!(
                "{ENV} plants a bug for tests; only debug builds honour it"
            )));
        }
        if bug != PlantedBug::None {
            tracing::warn!(?bug, "a test planted a replication bug in this broker");
        }
        // The first configuration read wins; a process reads its environment once.
        let _ = ACTIVE.set(bug);
        Ok(bug)
    }

    /// The controller's switch for this bug.
    pub fn controller(self) -> potok_controller::controller::PlantedBug {
        match self {
            PlantedBug::ElectOutsideIsr => {
                potok_controller::controller::PlantedBug::ElectOutsideIsr
            }
            _ => potok_controller::controller::PlantedBug::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_a_typo_is_an_error() {
        assert_eq!(PlantedBug::parse("").unwrap(), PlantedBug::None);
        assert_eq!(
            PlantedBug::parse("elect-outside-isr").unwrap(),
            PlantedBug::ElectOutsideIsr
        );
        assert_eq!(
            PlantedBug::parse("truncate-to-high-watermark").unwrap(),
            PlantedBug::TruncateToHighWatermark
        );
        assert_eq!(
            PlantedBug::parse("act-on-pending-shrink").unwrap(),
            PlantedBug::ActOnPendingShrink
        );
        assert!(PlantedBug::parse("elect-outside").is_err());
        assert_eq!(
            PlantedBug::ElectOutsideIsr.controller(),
            potok_controller::controller::PlantedBug::ElectOutsideIsr
        );
        assert_eq!(
            PlantedBug::TruncateToHighWatermark.controller(),
            potok_controller::controller::PlantedBug::None
        );
    }
}
