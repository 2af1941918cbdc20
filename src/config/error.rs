//! The one error type `config::load` and `config::parse` return: every problem found, each with the
//! place in the document it concerns, so an operator can fix them all in one pass.

use std::fmt;

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where: a document path such as `routes[0].targets[1].weight`, `(root)` for the document
    /// itself, `line 3 column 7` where no path is known (YAML syntax), or the file's path when it
    /// cannot be read.
    pub path: String,
    /// What, without echoing secret values.
    pub message: String,
}

impl ConfigProblem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a configuration; displays one `path: message` per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl From<Vec<ConfigProblem>> for ConfigErrors {
    fn from(problems: Vec<ConfigProblem>) -> Self {
        Self { problems }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_one_problem_per_line() {
        let errors = ConfigErrors::from(vec![
            ConfigProblem::new("routes[0].name", "required"),
            ConfigProblem::new("server.listen", "bad"),
        ]);
        assert_eq!(
            errors.to_string(),
            "routes[0].name: required\nserver.listen: bad"
        );
    }
}
