//! Configuration: YAML with `${VAR}` substitution, deserialized into raw serde types and validated
//! into [`model::Config`], reporting every problem with its path.

mod de;
pub mod defaults;
mod duration;
mod embedding;
mod env;
mod error;
pub mod model;
pub mod raw;
mod validate;

use std::path::Path;

use serde_yaml_ng::Value;

pub use embedding::EmbeddingFamily;
pub use error::{ConfigErrors, ConfigProblem};
pub use model::*;

/// Reads, substitutes from the process environment, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// Reads and parses a file with `${VAR}` looked up through `env` (the demo adds its simulators).
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigErrors::from(vec![ConfigProblem::new(
            path.display().to_string(),
            format!("cannot read: {err}"),
        )])
    })?;
    parse(&text, env)
}

/// Substitutes `${VAR}` through `env`, parses and validates config text.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let substituted = env::substitute(text, env)?;
    let mut doc: Value = serde_yaml_ng::from_str(&substituted.text)
        .map_err(|err| ConfigErrors::from(syntax_problems(&err, &substituted.unset)))?;
    doc.apply_merge()
        .map_err(|err| ConfigErrors::from(vec![ConfigProblem::new(de::ROOT, err.to_string())]))?;

    let unset = de::locate_unset(&doc, &substituted.unset);
    let mut problems = Vec::new();
    let config = validate::config(doc.clone(), &mut problems);
    // Where a variable is unset its value is unknown, so whatever was said about the
    // placeholder standing in for it is noise.
    problems.retain(|problem| {
        !problem.message.contains(env::PLACEHOLDER_PREFIX)
            && !unset.iter().any(|u| is_within(&problem.path, &u.path))
    });
    problems.extend(unset);
    de::sort_in_document_order(&mut problems, &doc);
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ if !problems.is_empty() => Err(problems.into()),
        _ => Err(vec![ConfigProblem::new(de::ROOT, "invalid configuration")].into()),
    }
}

/// Whether `path` is `ancestor` or lies inside it.
fn is_within(path: &str, ancestor: &str) -> bool {
    path.strip_prefix(ancestor)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// A YAML syntax error at its line and column; unset variables can only be placed by line too.
fn syntax_problems(err: &serde_yaml_ng::Error, unset: &[env::UnsetVar]) -> Vec<ConfigProblem> {
    let mut problems: Vec<ConfigProblem> = unset
        .iter()
        .map(|u| ConfigProblem::new(format!("line {} column {}", u.line, u.column), u.message()))
        .collect();
    let message = err.to_string();
    let problem = match err.location() {
        Some(at) => {
            let place = format!("line {} column {}", at.line(), at.column());
            // libyaml repeats the place in its message; once is enough.
            let message = message.replacen(&format!(" at {place}"), "", 1);
            ConfigProblem::new(place, format!("invalid YAML: {message}"))
        }
        None => ConfigProblem::new(de::ROOT, format!("invalid YAML: {message}")),
    };
    problems.push(problem);
    problems
}
