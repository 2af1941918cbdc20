//! `${VAR}` substitution over the raw text, before YAML parsing, so a variable can stand for any
//! scalar (a weight as well as a key). `$${VAR}` is a literal `${VAR}`. Values go in as-is and
//! are never scanned again, so a secret containing `${` cannot pull in another variable.
//!
//! An unset variable becomes a unique placeholder instead of failing at once: after parsing, the
//! placeholder is found in the document and reported at its path (`routes[0].targets[0].auth...`),
//! which says far more than a line number. A placeholder that parsing dropped sat in a comment and
//! does not matter.

use super::error::ConfigProblem;

/// Starts every placeholder; nothing a person would write.
pub const PLACEHOLDER_PREFIX: &str = "__bedrock_balancer_unset_env_";

/// The text with every variable replaced, and the unset ones still to be located.
#[derive(Debug)]
pub struct Substituted {
    pub text: String,
    pub unset: Vec<UnsetVar>,
}

/// A `${NAME}` whose variable is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsetVar {
    pub name: String,
    /// Stands in the text where the variable was; found again in the parsed document.
    pub placeholder: String,
    /// 1-based, where `${` was.
    pub line: usize,
    pub column: usize,
}

impl UnsetVar {
    pub fn message(&self) -> String {
        format!("environment variable {} is not set", self.name)
    }
}

/// Replaces every `${NAME}` with `env(NAME)`. Malformed references (`${` without `}`, a name that
/// is not `[A-Za-z_][A-Za-z0-9_]*`) are problems at their line and column.
pub fn substitute(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Substituted, Vec<ConfigProblem>> {
    let mut out = String::with_capacity(text.len());
    let mut unset = Vec::new();
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
            continue;
        }
        let Some(body) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let offset = text.len() - after.len();
        let (line, column) = position(text, offset);
        let Some(end) = body
            .find(['}', '\n'])
            .filter(|&end| body.as_bytes()[end] == b'}')
        else {
            problems.push(ConfigProblem::new(
                format!("line {line} column {column}"),
                "unterminated ${: expected } before the end of the line",
            ));
            rest = body;
            continue;
        };
        let name = &body[..end];
        rest = &body[end + 1..];
        if !is_var_name(name) {
            problems.push(ConfigProblem::new(
                format!("line {line} column {column}"),
                format!(
                    "invalid environment variable name {name:?} in ${{...}}; \
                     expected letters, digits and _ (write $${{ for a literal ${{)"
                ),
            ));
            continue;
        }
        match env(name) {
            Some(value) => out.push_str(&value),
            None => {
                let placeholder = format!("{PLACEHOLDER_PREFIX}{}__", unset.len());
                out.push_str(&placeholder);
                unset.push(UnsetVar {
                    name: name.to_owned(),
                    placeholder,
                    line,
                    column,
                });
            }
        }
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(Substituted { text: out, unset })
    } else {
        Err(problems)
    }
}

fn is_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("s3cr${ET}".to_owned()),
            "WEIGHT" => Some("7".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_values_as_is_once() {
        let s = substitute("a: ${KEY}\nb: ${WEIGHT}0\n", &env).unwrap();
        assert_eq!(s.text, "a: s3cr${ET}\nb: 70\n");
        assert!(s.unset.is_empty());
    }

    #[test]
    fn dollar_dollar_escapes() {
        let s = substitute("a: $${KEY} costs $5 and $$5", &env).unwrap();
        assert_eq!(s.text, "a: ${KEY} costs $5 and $$5");
    }

    #[test]
    fn unset_variables_become_located_placeholders() {
        let s = substitute("x: 1\ny: ${NOPE}-${KEY}\n", &env).unwrap();
        assert_eq!(
            s.text,
            "x: 1\ny: __bedrock_balancer_unset_env_0__-s3cr${ET}\n"
        );
        assert_eq!(
            s.unset,
            vec![UnsetVar {
                name: "NOPE".into(),
                placeholder: "__bedrock_balancer_unset_env_0__".into(),
                line: 2,
                column: 4,
            }]
        );
    }

    #[test]
    fn malformed_references_are_problems() {
        let problems = substitute("a: ${KEY\nb: ${not ok}\n", &env).unwrap_err();
        assert_eq!(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "line 1 column 4: unterminated ${: expected } before the end of the line"
                    .to_owned(),
                "line 2 column 4: invalid environment variable name \"not ok\" in ${...}; \
                 expected letters, digits and _ (write $${ for a literal ${)"
                    .to_owned(),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn text_without_dollar_is_unchanged(text in "[^$]*") {
            proptest::prop_assert_eq!(substitute(&text, &env).unwrap().text, text);
        }
    }
}
