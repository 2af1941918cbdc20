//! The `bedrock-balancer` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bedrock_balancer::logging::{self, LogFormat};
use bedrock_balancer::{app, config};
use bedrock_balancer_sim as sim;

mod demo;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bedrock-balancer",
    version,
    about = "Balances LLM traffic across Amazon Bedrock regions and models"
)]
struct Cli {
    /// Log as JSON lines (default) or human-readable text.
    #[arg(long, global = true, value_enum, default_value = "json")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, short, default_value = "config/gateway.yaml")]
        config: PathBuf,
        /// Reload when the config file changes (SIGHUP and POST /admin/reload always work).
        #[arg(long)]
        watch_config: bool,
    },
    /// Validate a config file and print every problem with its path.
    CheckConfig { file: PathBuf },
    /// Run a simulated Bedrock Runtime region.
    Sim(Box<sim::SimArgs>),
    /// Start three simulated regions, a simulated Anthropic API and the gateway on
    /// config/demo.yaml.
    Demo {
        #[arg(long, default_value = "config/demo.yaml")]
        config: PathBuf,
        /// Listen here instead of the config's server.listen (port 0 picks a free one).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve /admin, /metrics and the probes here instead of server.admin_listen.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
    },
}

/// How often `--watch-config` looks at the file.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Dropped when `main` returns, flushing the last log lines.
    let _log_writer = logging::init(cli.log_format);
    match cli.command {
        Command::CheckConfig { file } => match config::load(&file) {
            Ok(config) => {
                for warning in config::warnings(&config) {
                    eprintln!("warning: {warning}");
                }
                println!(
                    "{}: ok ({} routes, {} targets)",
                    file.display(),
                    config.routes.len(),
                    config.routes.iter().map(|r| r.targets.len()).sum::<usize>()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Serve {
            config: path,
            watch_config,
        } => {
            let config = match config::load(&path) {
                Ok(config) => config,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            run(async move {
                let reload_path = path.clone();
                let loader = Box::new(move || config::load(&reload_path));
                let running = app::start(config, Some(loader)).map_err(std::io::Error::other)?;
                if watch_config {
                    actix_rt::spawn(app::watch_config(running.state(), path, WATCH_INTERVAL));
                }
                println!(
                    "bedrock-balancer listening on http://{} (admin http://{})",
                    running.listen, running.admin
                );
                running.serve_until_signalled().await
            })
        }
        Command::Sim(args) => run(sim::run(*args)),
        Command::Demo {
            config,
            listen,
            admin_listen,
        } => run(demo::run(
            config,
            demo::Listeners {
                listen,
                admin_listen,
            },
        )),
    }
}

fn run(fut: impl std::future::Future<Output = std::io::Result<()>>) -> ExitCode {
    match actix_rt::System::new().block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bedrock-balancer: {e}");
            ExitCode::FAILURE
        }
    }
}
