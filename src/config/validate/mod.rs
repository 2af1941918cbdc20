//! Raw config to the validated [`Config`]: applies defaults (`defaults.rs`) and checks every rule,
//! collecting every problem with its path before failing. Sections and list elements are
//! deserialized one by one (`de.rs`) so a structural error in one does not hide the others.

use serde_yaml_ng::{Mapping, Value};

use crate::config::de::{self, ROOT};
use crate::config::error::ConfigProblem;
use crate::config::model::*;

mod checks;
mod consumers;
mod provider;
mod rate_limits;
mod routes;
mod server;
mod target_routing;
mod targets;

use consumers::consumers;
use rate_limits::rate_limits;
use routes::routes;
use server::server;

use crate::config::raw::*;
const TOP_LEVEL_FIELDS: [&str; 4] = ["server", "consumers", "rate_limits", "routes"];

/// Validates a parsed document. Returns a config only when no problem was found.
pub fn config(doc: Value, problems: &mut Vec<ConfigProblem>) -> Option<Config> {
    let mut top = match doc {
        Value::Mapping(map) => map,
        Value::Null => Mapping::new(),
        other => {
            problems.push(ConfigProblem::new(
                ROOT,
                format!("must be a mapping, got {}", de::kind(&other)),
            ));
            return None;
        }
    };
    for key in top.keys() {
        let name = key
            .as_str()
            .map_or_else(|| format!("{key:?}"), str::to_owned);
        if !TOP_LEVEL_FIELDS.contains(&name.as_str()) {
            problems.push(ConfigProblem::new(
                ROOT,
                format!(
                    "unknown field \"{name}\", expected one of {}",
                    TOP_LEVEL_FIELDS.join(", ")
                ),
            ));
        }
    }

    let server = match de::take(&mut top, "server") {
        None => server(RawServer::default(), problems),
        Some(v) => de::deserialize::<Option<RawServer>>(v, "server", problems)
            .and_then(|raw| server(raw.unwrap_or_default(), problems)),
    };

    let consumers = match de::take(&mut top, "consumers") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(v) => consumers(v, problems),
    };

    let rate_limits = match de::take(&mut top, "rate_limits") {
        None => rate_limits(RawRateLimits::default(), problems),
        Some(v) => de::deserialize::<Option<RawRateLimits>>(v, "rate_limits", problems)
            .and_then(|raw| rate_limits(raw.unwrap_or_default(), problems)),
    };

    let routes = match de::take(&mut top, "routes") {
        None | Some(Value::Null) => {
            problems.push(ConfigProblem::new("routes", "required"));
            None
        }
        Some(v) => routes(v, problems),
    };

    Some(Config {
        server: server?,
        consumers: consumers?,
        rate_limits: rate_limits?,
        routes: routes?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn top_level_fields_match_raw_config() {
        let raw: RawConfig =
            serde_yaml_ng::from_str("server: {}\nconsumers: []\nrate_limits: {}\nroutes: []\n")
                .unwrap();
        assert!(raw.server.is_some() && raw.consumers.is_some() && raw.rate_limits.is_some());
        assert_eq!(TOP_LEVEL_FIELDS.len(), 4);
    }
}
