//! The client-side subcommands of the `potok` binary: `topics`, `produce`, `consume`, `groups`,
//! `cluster`, `transactions`, `bench` and `completions`, built on librdkafka (the `rdkafka` crate) so that the command line
//! exercises a broker exactly as applications do.
//!
//! The binary flattens [`Command`] into its own subcommand enum and calls [`run`]; every failure
//! comes back as one [`Error`] whose `Display` is the single line to print before exiting
//! non-zero. Nothing here needs an async runtime: librdkafka does its network IO on its own
//! threads, and the few admin futures are driven by a parked thread (see `client::block_on`).

pub mod balance;
pub mod bench;
pub mod client;
pub mod cluster;
pub mod consume;
pub mod error;
pub mod format;
pub mod groups;
pub mod partitioner;
pub mod produce;
pub mod reassign;
mod signal;
pub mod topics;
pub mod transactions;
pub mod wire;

use std::io::BufWriter;

use clap::Subcommand;

pub use client::{ClientArgs, OutputFormat};
pub use error::{Error, Result};

/// The client subcommands, meant to be `#[command(flatten)]`ed into the binary's `Subcommand`
/// enum next to `serve`.
#[derive(Subcommand, Clone, Debug)]
pub enum Command {
    /// Create, list, describe, alter and delete topics.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// Write records read from stdin, one per line.
    Produce(produce::ProduceArgs),
    /// Read records and write them to stdout.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// Show the brokers and the controller quorum.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// List, describe and abort transactions.
    #[command(subcommand)]
    Transactions(transactions::TransactionsCommand),
    /// Measure throughput and latency of any Kafka-compatible broker.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Print a shell completion script, e.g. `potok completions bash > /etc/bash_completion.d/potok`.
    Completions {
        /// Shell to generate the script for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Runs one client subcommand. `root` is the binary's whole clap command (for completions) and
/// `bin_name` its name.
pub fn run(cmd: Command, mut root: clap::Command, bin_name: &str) -> Result<()> {
    match cmd {
        Command::Topics(c) => topics::run(&c),
        Command::Produce(a) => produce::run(&a, std::io::stdin().lock()),
        Command::Consume(a) => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
            match consume::run(&a, &mut out) {
                // `potok consume | head` closing the pipe is a normal way to stop.
                Err(e) if e.is_broken_pipe() => Ok(()),
                other => other,
            }
        }
        Command::Groups(c) => groups::run(&c),
        Command::Bench(c) => bench::run(&c),
        Command::Cluster(c) => cluster::run(&c),
        Command::Transactions(c) => transactions::run(&c),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut root, bin_name, &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Prints `err` as the one line `error: ...` on stderr and returns the exit code to use.
pub fn report_error(err: &Error) -> std::process::ExitCode {
    eprintln!("potok: error: {err}");
    std::process::ExitCode::FAILURE
}
