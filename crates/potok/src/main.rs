//! The `potok` binary: `potok serve` starts a broker; further subcommands (the command-line
//! tools) are added as variants of [`Command`] and implemented in their own crates.
//!
//! The client tools (`potok-cli`, on librdkafka) are behind the `cli` feature: building
//! librdkafka needs cmake, and the broker must build on a machine with only the Rust toolchain
//! (issue #14). Without the feature, a tool's name gets an error that says how to get it.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

mod dev_cluster;

/// Potok: a Kafka-wire-compatible event-streaming broker.
#[derive(Debug, Parser)]
#[command(name = "potok", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Every subcommand. Add new tools here (one variant each) and dispatch them in `main`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker until SIGTERM/SIGINT.
    Serve(ServeArgs),
    /// Start a local cluster of `--nodes` voters (combined mode) and print its bootstrap string.
    DevCluster(dev_cluster::DevClusterArgs),
    /// The client tools (topics, produce, consume, groups, bench, completions), in potok-cli.
    #[cfg(feature = "cli")]
    // Boxed: the client tools' options are far larger than the other variants.
    #[command(flatten)]
    Client(Box<potok_cli::Command>),
    /// The transactional outbox relay from PostgreSQL to topics (`run`, `init`).
    #[cfg(feature = "cli")]
    #[command(subcommand)]
    Outbox(potok_outbox::OutboxCommand),
    /// Any other subcommand: in a build without the client tools, the tools' names land here.
    #[cfg(not(feature = "cli"))]
    #[command(external_subcommand)]
    Other(Vec<String>),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// A server.properties-style file with Kafka setting names.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override one setting, e.g. `--set log.dirs=/data --set num.partitions=3`.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::DevCluster(args) => dev_cluster::run(args),
        // The CLI's errors already read as one complete line (their sources included), so they
        // are passed on as text rather than as a chain that `{:#}` would print twice.
        #[cfg(feature = "cli")]
        Command::Client(cmd) => {
            potok_cli::run(*cmd, Cli::command(), "potok").map_err(|e| anyhow::anyhow!("{e}"))
        }
        #[cfg(feature = "cli")]
        Command::Outbox(cmd) => {
            init_logging();
            potok_outbox::run(cmd).map_err(|e| anyhow::anyhow!("{e}"))
        }
        #[cfg(not(feature = "cli"))]
        Command::Other(args) => Err(not_built(&args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line (with causes) instead of a backtrace: these are user errors
            // such as a bad setting or an unusable data directory.
            eprintln!("potok: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error for a subcommand this build does not have.
#[cfg(not(feature = "cli"))]
fn not_built(args: &[String]) -> anyhow::Error {
    const TOOLS: [&str; 7] = [
        "outbox",
        "topics",
        "produce",
        "consume",
        "groups",
        "bench",
        "completions",
    ];
    let name = args.first().map(String::as_str).unwrap_or("");
    if TOOLS.contains(&name) {
        anyhow::anyhow!(
            "`potok {name}` is one of the client tools, which this binary was built without; \
             build with `cargo build --release -p potok --features cli` (needs cmake)"
        )
    } else {
        // Keep clap's usual wording and usage text for anything else.
        let _ = Cli::command().print_help();
        anyhow::anyhow!("unrecognized subcommand '{name}'")
    }
}

/// Logs to stderr, filtered by `POTOK_LOG` (default `info`).
fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("POTOK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    let config = potok_broker::BrokerConfig::load(args.config.as_deref(), &args.set)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("potok")
        .build()?;
    runtime.block_on(potok_broker::run(config))?;
    Ok(())
}
