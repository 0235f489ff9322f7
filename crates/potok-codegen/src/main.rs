//! Command-line entry point of the Kafka message code generator.
//!
//! Usage: `cargo run -p potok-codegen -- <spec dir> <output dir>`, e.g.
//! `cargo run -p potok-codegen -- ../shared/kafka-message-specs crates/potok-protocol/src/generated`.

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        anyhow::bail!("usage: potok-codegen <kafka-message-specs dir> <output dir>");
    }
    let written = potok_codegen::generate(
        std::path::Path::new(&args[1]),
        std::path::Path::new(&args[2]),
    )?;
    eprintln!("wrote {written} files to {}", args[2]);
    Ok(())
}
