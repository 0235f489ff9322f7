//! `potok dev-cluster --nodes N [--brokers M]`: a local cluster for development. Starts N
//! `potok serve` children of this same binary on 127.0.0.1, every one a voter of the controller
//! quorum (combined mode), and M broker-only nodes (`process.roles=broker`, observers of the
//! quorum), prints the bootstrap string, and stops them all on SIGINT/SIGTERM (or when one
//! exits).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::Context;

/// Arguments of `potok dev-cluster`.
#[derive(Debug, clap::Args)]
pub struct DevClusterArgs {
    /// Number of nodes (voters).
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Number of broker-only nodes (`process.roles=broker`), ids N+1 ..., with a client
    /// listener only, at base + 2N + (j-1) for the j-th.
    #[arg(long, default_value_t = 0)]
    brokers: u16,
    /// First client port; node i listens on base + 2(i-1) for clients and base + 2(i-1) + 1 for
    /// the quorum (CONTROLLER).
    #[arg(long, default_value_t = 19092)]
    base_port: u16,
    /// Directory for the nodes' data (`node-1`, ...); kept across runs.
    #[arg(long, default_value = "./potok-dev-cluster")]
    dir: PathBuf,
    /// Further settings for every node (`--set name=value`).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

/// Runs the cluster until a signal arrives or a node exits.
pub fn run(args: DevClusterArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=9).contains(&args.nodes), "--nodes must be 1 to 9");
    anyhow::ensure!(args.brokers <= 9, "--brokers must be 0 to 9");
    let last = u32::from(args.base_port) + 2 * u32::from(args.nodes) + u32::from(args.brokers);
    anyhow::ensure!(
        last <= 65535,
        "--base-port too high for {} nodes",
        args.nodes
    );
    let exe = std::env::current_exe().context("locate the potok binary")?;
    let port = |i: u16, controller: bool| {
        if i > args.nodes {
            // A broker-only node: one client port after the voters' pairs.
            args.base_port + 2 * args.nodes + (i - args.nodes - 1)
        } else {
            args.base_port + 2 * (i - 1) + u16::from(controller)
        }
    };
    let voters = (1..=args.nodes)
        .map(|i| format!("{i}@127.0.0.1:{}", port(i, true)))
        .collect::<Vec<_>>()
        .join(",");
    let mut children: Vec<Child> = Vec::new();
    let all = args.nodes + args.brokers;
    for i in 1..=all {
        let dir = args.dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("serve");
        let broker_only = i > args.nodes;
        let (roles, listeners) = if broker_only {
            (
                "broker",
                format!("listeners=PLAINTEXT://127.0.0.1:{}", port(i, false)),
            )
        } else {
            (
                "broker,controller",
                format!(
                    "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                    port(i, false),
                    port(i, true)
                ),
            )
        };
        let sets = [
            format!("node.id={i}"),
            format!("process.roles={roles}"),
            listeners,
            format!("log.dirs={}", dir.join("data").display()),
            format!("controller.quorum.voters={voters}"),
            "potok.cluster.id=potok-dev-cluster".to_string(),
        ];
        for s in sets.iter().chain(&args.set) {
            cmd.arg("--set").arg(s);
        }
        match cmd.spawn() {
            Ok(c) => children.push(c),
            Err(e) => {
                stop(&mut children);
                return Err(e).context("start a node");
            }
        }
    }
    let bootstrap = (1..=all)
        .map(|i| format!("127.0.0.1:{}", port(i, false)))
        .collect::<Vec<_>>()
        .join(",");
    println!("bootstrap.servers={bootstrap}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = term.recv() => return Ok::<_, anyhow::Error>(None),
                _ = int.recv() => return Ok(None),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            for (i, c) in children.iter_mut().enumerate() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Ok(Some((i + 1, status)));
                }
            }
        }
    });
    stop(&mut children);
    match outcome? {
        Some((i, status)) => anyhow::bail!("node {i} exited with {status}; stopped the others"),
        None => Ok(()),
    }
}

/// SIGTERM to every child (a clean shutdown), then waits for them.
fn stop(children: &mut [Child]) {
    for c in children.iter() {
        // SAFETY: kill(2) with the pid of our own child process.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    for c in children.iter_mut() {
        let _ = c.wait();
    }
}
