//! Command-line options of `bedrock-balancer sim`.

use std::net::SocketAddr;
use std::str::FromStr;

use super::faults::Faults;
use super::{SimKey, SimOptions, SimProvider};

/// Workers for the standalone simulator: enough to overlap streams on a small machine.
const CLI_WORKERS: usize = 2;

#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// The API to serve.
    #[arg(long, value_enum, default_value_t = SimProvider::Bedrock)]
    pub provider: SimProvider,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The region this simulator pretends to be, checked against each request's credential scope.
    #[arg(long, default_value = super::DEFAULT_REGION)]
    pub region: String,
    /// Accepted credentials as ID:SECRET[:SESSION_TOKEN]; repeatable. Default: the AWS example key.
    #[arg(long = "key", value_name = "ID:SECRET[:SESSION_TOKEN]")]
    pub keys: Vec<SimKey>,
    /// Accepted API keys, repeatable: Bedrock API keys (`Authorization: Bearer KEY` instead of
    /// SigV4), or the provider API's keys (`x-api-key`, `Authorization: Bearer`, `api-key`).
    #[arg(long = "api-key", value_name = "KEY")]
    pub api_keys: Vec<String>,
    /// actix-web worker threads.
    #[arg(long, default_value_t = CLI_WORKERS)]
    pub workers: usize,
    /// Accept requests without a valid SigV4 signature (benchmark baselines only).
    #[arg(long)]
    pub accept_unsigned: bool,
    /// OpenAI / Azure modes: refuse `stream_options`, like an older OpenAI-compatible server.
    #[arg(long)]
    pub refuse_stream_options: bool,
    /// OpenAI / Azure modes: answer without `usage`, like some OpenAI-compatible servers.
    #[arg(long)]
    pub omit_usage: bool,
    /// Serve the provider's API under this path (e.g. `/openai`: `/openai/v1/chat/completions`).
    #[arg(long, default_value = "")]
    pub path_prefix: String,
    #[command(flatten)]
    pub faults: Faults,
}

impl SimArgs {
    pub fn into_options(self) -> SimOptions {
        let mut opts = SimOptions::new(&self.region);
        opts.provider = self.provider;
        opts.listen = self.listen;
        if !self.keys.is_empty() {
            opts.keys = self.keys;
        }
        opts.api_keys = self.api_keys;
        opts.workers = self.workers;
        opts.accept_unsigned = self.accept_unsigned;
        opts.refuse_stream_options = self.refuse_stream_options;
        opts.omit_usage = self.omit_usage;
        opts.path_prefix = self.path_prefix;
        opts.faults = self.faults;
        opts
    }
}

impl FromStr for SimKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(secret), token) if !id.is_empty() && !secret.is_empty() => Ok(Self {
                access_key_id: id.to_owned(),
                secret_access_key: secret.to_owned(),
                session_token: token.filter(|t| !t.is_empty()).map(str::to_owned),
            }),
            _ => Err("expected ID:SECRET[:SESSION_TOKEN]".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn keys_and_fault_flags_parse() {
        let cli = Cli::try_parse_from([
            "sim",
            "--key",
            "AK:se/cr+et:tok",
            "--fail-status",
            "429",
            "--silence-after-headers",
            "--provider",
            "anthropic",
            "--api-key",
            "k1",
            "--api-key",
            "k2",
        ])
        .unwrap();
        let opts = cli.sim.into_options();
        assert_eq!(opts.keys[0].session_token.as_deref(), Some("tok"));
        assert_eq!(opts.keys[0].secret_access_key, "se/cr+et");
        assert_eq!(opts.faults.status, Some(429));
        assert!(opts.faults.silence_after_headers);
        assert_eq!(opts.api_keys, ["k1", "k2"]);
        assert_eq!(opts.provider, SimProvider::Anthropic);
        assert_eq!(opts.region, "us-east-1");
    }

    #[test]
    fn default_key_is_the_aws_example() {
        let opts = Cli::try_parse_from(["sim"]).unwrap().sim.into_options();
        assert_eq!(opts.keys.len(), 1);
        assert_eq!(opts.keys[0].access_key_id, "AKIDEXAMPLE");
        assert_eq!(opts.provider, SimProvider::Bedrock);
        for (name, provider) in [
            ("openai", SimProvider::OpenAi),
            ("azure", SimProvider::Azure),
        ] {
            let cli = Cli::try_parse_from(["sim", "--provider", name]).unwrap();
            assert_eq!(cli.sim.into_options().provider, provider);
        }
        assert!("nocolon".parse::<SimKey>().is_err());
    }
}
