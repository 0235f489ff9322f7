//! The scenarios: each is a short sequence of client operations whose answers are recorded.
//! Names become topic and group name prefixes (`{scenario}-t`), so scenarios never meet on
//! one broker; a scenario waits (unrecorded) where Kafka changes state asynchronously.

mod configs;
mod groups;
mod offsets;
mod produce;
mod topics;

use crate::session::Session;

/// A named scenario.
pub struct Scenario {
    pub name: &'static str,
    pub run: fn(&mut Session),
}

/// A scenario (closures without captures are `fn` pointers).
pub fn sc(name: &'static str, run: fn(&mut Session)) -> Scenario {
    Scenario { name, run }
}

/// Every scenario, in run order.
pub fn all() -> Vec<Scenario> {
    [
        topics::all(),
        produce::all(),
        offsets::all(),
        groups::all(),
        configs::all(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
