//! Configuration: YAML with `${VAR}` values from the environment, deserialized into raw serde types and validated
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
mod warnings;

use std::path::Path;

use serde_yaml_ng::Value;

pub use embedding::EmbeddingFamily;
pub use error::{ConfigErrors, ConfigProblem};
pub use model::*;
pub use warnings::warnings;

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

/// Parses config text, puts `${VAR}` values (looked up through `env`) into its scalars, and
/// validates it.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let marked = env::mark(text, env)?;
    let mut doc: Value = serde_yaml_ng::from_str(&marked.text)
        .map_err(|err| ConfigErrors::from(syntax_problems(&err, &marked)))?;
    doc.apply_merge()
        .map_err(|err| ConfigErrors::from(vec![ConfigProblem::new(de::ROOT, err.to_string())]))?;

    let mut problems = Vec::new();
    let unset = marked.resolve(&mut doc, &mut problems);
    let config = validate::config(doc.clone(), &mut problems);
    // Where a variable is unset its value is unknown, so whatever was said about the
    // token standing in for it is noise.
    problems.retain(|problem| {
        !problem.message.contains(env::TOKEN_PREFIX)
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
fn syntax_problems(err: &serde_yaml_ng::Error, marked: &env::Marked) -> Vec<ConfigProblem> {
    let mut problems = marked.unset_by_line();
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
