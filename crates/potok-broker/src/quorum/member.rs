//! What this node is in the quorum: a voter (`process.roles=broker,controller`) or an observer
//! (`process.roles=broker`, `potok_controller::observer`). The driver talks to either through
//! this one type, so its registration, heartbeats, producer-id requests and the application of
//! committed entries are the same code for both; only a voter steps Raft messages, proposes and
//! answers observers' fetches, and only an observer sends fetches.

use potok_controller::observer::{FetchAnswer, FetchRequest, ObserverNode};
use potok_controller::quorum::{Output, QuorumNode, QuorumStatus};
use potok_controller::ControllerError;
use raft::eraftpb::Message;

/// A voter or an observer.
pub enum Member {
    /// A voter of the controller quorum (boxed: raft-rs's node is large, and the driver
    /// holds exactly one member for its whole life).
    Voter(Box<QuorumNode>),
    /// A broker-only node.
    Observer(ObserverNode),
}

impl Member {
    /// This node's id.
    pub fn id(&self) -> u64 {
        match self {
            Member::Voter(v) => v.id(),
            Member::Observer(o) => o.id(),
        }
    }

    /// The leader (the active controller) known, if any.
    pub fn leader(&self) -> Option<u64> {
        match self {
            Member::Voter(v) => v.leader(),
            Member::Observer(o) => o.leader(),
        }
    }

    /// Whether this node leads the quorum (never an observer).
    pub fn is_leader(&self) -> bool {
        match self {
            Member::Voter(v) => v.is_leader(),
            Member::Observer(_) => false,
        }
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        match self {
            Member::Voter(v) => v.term(),
            Member::Observer(o) => o.term(),
        }
    }

    /// The last index of the log (a voter's, uncommitted entries included).
    pub fn log_end(&self) -> u64 {
        match self {
            Member::Voter(v) => v.log_end(),
            Member::Observer(o) => o.last_index(),
        }
    }

    /// What DescribeQuorum reports from here.
    pub fn status(&self) -> QuorumStatus {
        match self {
            Member::Voter(v) => v.status(),
            Member::Observer(o) => o.status(),
        }
    }

    /// One tick of the driver's clock.
    pub fn tick(&mut self) -> Vec<Output> {
        match self {
            Member::Voter(v) => v.tick(),
            Member::Observer(o) => o.tick(),
        }
    }

    /// A Raft message (a voter's; an observer is sent none, and would drop it).
    pub fn step(&mut self, msg: Message) -> Result<Vec<Output>, ControllerError> {
        match self {
            Member::Voter(v) => v.step(msg),
            Member::Observer(_) => Ok(Vec::new()),
        }
    }

    /// The start-up catch-up's ReadIndex.
    pub fn read_index(&mut self, ctx: u64) -> Vec<Output> {
        match self {
            Member::Voter(v) => v.read_index(ctx),
            Member::Observer(o) => o.read_index(ctx),
        }
    }

    /// A proposal (only the leader, hence never an observer, proposes).
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(u64, u64, Vec<Output>), ControllerError> {
        match self {
            Member::Voter(v) => v.propose(data),
            Member::Observer(o) => Err(ControllerError::NotLeader { leader: o.leader() }),
        }
    }

    /// An observer's fetch on a voter: the answer, unless the fetch waits for the next commit
    /// (then an `Output::ObserverAnswer` follows), and the outputs of a ReadIndex asked for the
    /// observer. An observer answers nothing.
    pub fn serve_fetch(
        &mut self,
        observer: u64,
        request: &FetchRequest,
    ) -> (Option<FetchAnswer>, Vec<Output>) {
        match self {
            Member::Voter(v) => v.serve_fetch(observer, request),
            Member::Observer(_) => (None, Vec::new()),
        }
    }

    /// A voter's answer to this observer's fetch (ignored by a voter).
    pub fn on_fetched(&mut self, from: u64, answer: FetchAnswer) -> Vec<Output> {
        match self {
            Member::Voter(_) => Vec::new(),
            Member::Observer(o) => o.on_answer(from, answer),
        }
    }
}
