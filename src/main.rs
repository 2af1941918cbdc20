//! Minimal CLI for the simulator branch; the full `serve | check-config | sim` CLI replaces it.

use bedrock_balancer::sim::{self, SimArgs};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bedrock-balancer", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Bedrock Runtime simulator.
    Sim(SimArgs),
}

fn main() -> std::io::Result<()> {
    let Command::Sim(args) = Cli::parse().command;
    actix_rt::System::new().block_on(sim::run(args))
}
