//! `${VAR}` substitution. A value is data: it lands in the parsed scalar byte for byte and never
//! in the YAML text, so a secret holding `#`, `"`, `: ` or a newline cannot change the document.
//!
//! Two steps. [`mark`] swaps every `${NAME}` in the text for a token of letters, digits and `_`,
//! which YAML reads the same wherever it stands (plain, quoted, flow or block), so the document
//! parses as it was written. [`Marked::resolve`] then replaces the tokens inside the parsed string
//! scalars, where each one's path is known, so an unset variable is reported at the exact path
//! (`routes[0].targets[0].auth...`). A token that parsing dropped sat in a comment and does not
//! matter. `$${VAR}` is a literal `${VAR}`; values are never scanned again, so a secret
//! containing `${` cannot pull in another variable.

use serde_yaml_ng::Value;

use super::de;
use super::error::ConfigProblem;
use super::raw::SECRET_FIELDS;

/// Starts every token; nothing a person would write.
pub const TOKEN_PREFIX: &str = "__bedrock_balancer_env_";
const TOKEN_SUFFIX: &str = "__";

/// The text with every reference replaced by a token, and what each token stands for.
#[derive(Debug)]
pub struct Marked {
    pub text: String,
    references: Vec<Reference>,
}

/// One `${NAME}` in the text; token `i` stands for `references[i]`.
#[derive(Debug)]
struct Reference {
    name: String,
    value: Option<String>,
    /// Directly inside quotes: the scalar is a string whatever the value looks like.
    quoted: bool,
    /// 1-based, where `${` was.
    line: usize,
    column: usize,
}

impl Reference {
    fn unset_message(&self) -> String {
        format!("environment variable {} is not set", self.name)
    }

    /// Names the variable, never what the rest of the value holds.
    fn empty_secret_message(&self) -> String {
        format!(
            "environment variable {} is empty; a secret must not take an empty value",
            self.name
        )
    }
}

/// Replaces every `${NAME}` with a token and looks `NAME` up through `env`. Malformed references
/// (`${` without `}`, a name that is not `[A-Za-z_][A-Za-z0-9_]*`) are problems at their line
/// and column.
pub fn mark(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Marked, Vec<ConfigProblem>> {
    let mut out = String::with_capacity(text.len());
    let mut references = Vec::new();
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
        out.push_str(&token(references.len()));
        references.push(Reference {
            name: name.to_owned(),
            value: env(name),
            quoted: text[..offset].ends_with(['"', '\'']),
            line,
            column,
        });
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(Marked {
            text: out,
            references,
        })
    } else {
        Err(problems)
    }
}

impl Marked {
    /// Where the text does not even parse, unset variables can only be placed by line.
    pub fn unset_by_line(&self) -> Vec<ConfigProblem> {
        self.references
            .iter()
            .filter(|r| r.value.is_none())
            .map(|r| {
                ConfigProblem::new(
                    format!("line {} column {}", r.line, r.column),
                    r.unset_message(),
                )
            })
            .collect()
    }

    /// Puts every variable's value where its token is in the parsed document. Returns the unset
    /// variables, each a problem at its path, whose tokens stay (what depends on them can be told
    /// apart), and the empty ones in a secret field ([`SECRET_FIELDS`]), whose value the field's
    /// own checks need not judge again. A reference in a mapping key is a problem added to
    /// `problems`.
    pub fn resolve(
        &self,
        doc: &mut Value,
        problems: &mut Vec<ConfigProblem>,
    ) -> Vec<ConfigProblem> {
        let mut unset = Vec::new();
        if !self.references.is_empty() {
            self.resolve_at(doc, de::ROOT, &mut unset, problems);
        }
        unset
    }

    fn resolve_at(
        &self,
        value: &mut Value,
        path: &str,
        unset: &mut Vec<ConfigProblem>,
        problems: &mut Vec<ConfigProblem>,
    ) {
        match value {
            Value::String(text) => {
                if let Some(resolved) = self.scalar(text, path, unset) {
                    *value = resolved;
                }
            }
            Value::Sequence(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.resolve_at(item, &de::index(path, i), unset, problems);
                }
            }
            Value::Mapping(map) => {
                for (key, item) in map.iter_mut() {
                    let key = de::key_text(key);
                    if key.contains(TOKEN_PREFIX) {
                        problems.push(ConfigProblem::new(
                            path,
                            "${...} in a mapping key; variables can stand only in values",
                        ));
                    }
                    self.resolve_at(item, &de::field(path, &key), unset, problems);
                }
            }
            Value::Tagged(tagged) => self.resolve_at(&mut tagged.value, path, unset, problems),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// The scalar with its tokens replaced; `None` leaves it as it is: it holds no token, or an
    /// unset variable's, and then its value is unknown anyway.
    fn scalar(
        &self,
        text: &str,
        path: &str,
        unset_problems: &mut Vec<ConfigProblem>,
    ) -> Option<Value> {
        let parts = self.split(text);
        if !parts.iter().any(|part| matches!(part, Part::Reference(_))) {
            return None;
        }
        let secret = SECRET_FIELDS.contains(&path.rsplit('.').next().unwrap_or(path));
        let mut out = String::with_capacity(text.len());
        let mut unset = false;
        for part in &parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Reference(reference) => match &reference.value {
                    Some(value) if value.is_empty() && secret => unset_problems
                        .push(ConfigProblem::new(path, reference.empty_secret_message())),
                    Some(value) => out.push_str(value),
                    None => {
                        unset = true;
                        unset_problems.push(ConfigProblem::new(path, reference.unset_message()));
                    }
                },
            }
        }
        if unset {
            return None;
        }
        match parts.as_slice() {
            [Part::Reference(reference)] if !reference.quoted => Some(typed(out)),
            _ => Some(Value::String(out)),
        }
    }

    /// `text` cut into literal text and the references its tokens stand for. Something that only
    /// looks like a token (no reference has that number) is text.
    fn split<'a>(&'a self, text: &'a str) -> Vec<Part<'a>> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find(TOKEN_PREFIX) {
            let after = &rest[at + TOKEN_PREFIX.len()..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let reference = after[digits..]
                .starts_with(TOKEN_SUFFIX)
                .then(|| after[..digits].parse::<usize>().ok())
                .flatten()
                .and_then(|i| self.references.get(i));
            let Some(reference) = reference else {
                parts.push(Part::Text(&rest[..at + TOKEN_PREFIX.len()]));
                rest = after;
                continue;
            };
            if at > 0 {
                parts.push(Part::Text(&rest[..at]));
            }
            parts.push(Part::Reference(reference));
            rest = &after[digits + TOKEN_SUFFIX.len()..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest));
        }
        parts
    }
}

enum Part<'a> {
    Text(&'a str),
    Reference(&'a Reference),
}

/// A plain `${VAR}` standing alone is a number or a boolean when YAML would read its value as
/// one, so `weight: ${W}` works; every other value is a string, and nothing is ever read as YAML
/// structure.
fn typed(value: String) -> Value {
    let simple = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+-".contains(&b));
    if simple
        && let Ok(scalar @ (Value::Number(_) | Value::Bool(_))) =
            serde_yaml_ng::from_str::<Value>(&value)
    {
        return scalar;
    }
    Value::String(value)
}

fn token(index: usize) -> String {
    format!("{TOKEN_PREFIX}{index}{TOKEN_SUFFIX}")
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
            "KEY" => Some("s3cr${ET} # not: a comment".to_owned()),
            "WEIGHT" => Some("7".to_owned()),
            "FLAG" => Some("true".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    /// The document after marking, parsing and resolving, and the unset variables' problems.
    fn resolved(text: &str) -> (Value, Vec<String>) {
        let marked = mark(text, &env).unwrap();
        let mut doc: Value = serde_yaml_ng::from_str(&marked.text).unwrap();
        let mut problems = Vec::new();
        let unset = marked.resolve(&mut doc, &mut problems);
        problems.extend(unset);
        (doc, problems.iter().map(ToString::to_string).collect())
    }

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn values_are_data_wherever_the_reference_stands() {
        let (doc, problems) = resolved(
            "plain: ${KEY}\nquoted: \"${KEY}\"\nflow: { a: ${KEY}, b: [x-${KEY}] }\nblock: |\n  ${KEY}\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let key = "s3cr${ET} # not: a comment";
        assert_eq!(doc["plain"], Value::String(key.into()));
        assert_eq!(doc["quoted"], Value::String(key.into()));
        assert_eq!(doc["flow"]["a"], Value::String(key.into()));
        assert_eq!(doc["flow"]["b"][0], Value::String(format!("x-{key}")));
        assert_eq!(doc["block"], Value::String(format!("{key}\n")));
    }

    #[test]
    fn a_plain_reference_alone_takes_a_number_or_boolean_type() {
        let (doc, _) = resolved(
            "w: ${WEIGHT}\nflag: ${FLAG}\nquoted: \"${WEIGHT}\"\nsingle: '${FLAG}'\njoined: ${WEIGHT}0\n",
        );
        assert_eq!(
            doc,
            yaml("w: 7\nflag: true\nquoted: \"7\"\nsingle: \"true\"\njoined: \"70\"\n")
        );
    }

    #[test]
    fn dollar_dollar_escapes() {
        let marked = mark("a: $${KEY} costs $5 and $$5", &env).unwrap();
        assert_eq!(marked.text, "a: ${KEY} costs $5 and $$5");
    }

    #[test]
    fn unset_variables_are_reported_at_their_path_and_keep_their_token() {
        let (doc, problems) = resolved("x: 1\nlist:\n  - { y: \"${NOPE}-${KEY}\" }\n");
        assert_eq!(
            problems,
            ["list[0].y: environment variable NOPE is not set"]
        );
        assert_eq!(
            doc["list"][0]["y"],
            Value::String(format!("{}-{}", token(0), token(1)))
        );
        let marked = mark("x: [\n y: ${NOPE}\n", &env).unwrap();
        assert_eq!(
            marked
                .unset_by_line()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["line 2 column 5: environment variable NOPE is not set"]
        );
    }

    #[test]
    fn an_empty_variable_in_a_secret_is_a_problem_naming_it_and_elsewhere_is_text() {
        let (doc, problems) = resolved(
            "auth: { header_name: Authorization, header_value: \"Bearer ${EMPTY}\" }
name: \"m${EMPTY}\"
",
        );
        assert_eq!(
            problems,
            [
                "auth.header_value: environment variable EMPTY is empty; a secret must not take an empty value"
            ]
        );
        assert_eq!(doc["name"], Value::String("m".into()));
    }

    #[test]
    fn a_reference_in_a_key_is_a_problem() {
        let (_, problems) = resolved("outer:\n  ${KEY}: 1\n");
        assert_eq!(
            problems,
            ["outer: ${...} in a mapping key; variables can stand only in values"]
        );
    }

    #[test]
    fn text_that_only_looks_like_a_token_stays() {
        let text = format!("a: {TOKEN_PREFIX}9__ {TOKEN_PREFIX}x ${{WEIGHT}}\n");
        let (doc, _) = resolved(&text);
        assert_eq!(
            doc["a"],
            Value::String(format!("{TOKEN_PREFIX}9__ {TOKEN_PREFIX}x 7"))
        );
    }

    #[test]
    fn malformed_references_are_problems() {
        let problems = mark("a: ${KEY\nb: ${not ok}\n", &env).unwrap_err();
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

    /// Characters that mean something to YAML, or to this substitution.
    const META: [&str; 20] = [
        "#", "\"", "'", "\\", ": ", "{", "}", "[", "]", "&", "*", "!", "|", ">", "%", "@", "`",
        "${OTHER}", "$${", ",",
    ];

    /// Any mix of YAML metacharacters, whitespace (leading, trailing, newlines) and text, never
    /// blank, with at least one metacharacter.
    fn secret() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let fragment = prop_oneof![
            proptest::sample::select(META.to_vec()).prop_map(str::to_owned),
            proptest::sample::select(vec![
                " ", "  ", "\n", "\t", "\r\n", "- ", "? ", "---", "..."
            ])
            .prop_map(str::to_owned),
            Just(token(0)),
            "[A-Za-z0-9/+=]{1,6}",
            "\\PC{1,3}",
        ];
        let side = proptest::collection::vec(fragment, 0..8).prop_map(|parts| parts.concat());
        (side.clone(), proptest::sample::select(META.to_vec()), side)
            .prop_map(|(left, meta, right)| format!("{left}{meta}{right}"))
    }

    proptest::proptest! {
        #[test]
        fn secrets_load_byte_exact(id in secret(), key in secret(), token in secret()) {
            use sha2::Digest;
            let text = "\
consumers:
  - name: team
    api_key: ${KEY}
routes:
  - name: claude
    targets:
      - model: { provider: bedrock, name: m, options: { bedrock: { aws_region: us-east-1 } } }
        auth:
          aws_access_key_id: ${ID}
          aws_secret_access_key: \"${KEY}\"
          aws_session_token: '${TOKEN}'
      - model: { provider: bedrock, name: m, options: { bedrock: { aws_region: us-west-2 } } }
        auth: { aws_access_key_id: ${ID}, aws_secret_access_key: ${KEY}, aws_session_token: \"${TOKEN}\" }
";
            let vars = |name: &str| match name {
                "ID" => Some(id.clone()),
                "KEY" => Some(key.clone()),
                "TOKEN" => Some(token.clone()),
                _ => None,
            };
            let config = crate::config::parse(text, &vars).map_err(|e| {
                proptest::test_runner::TestCaseError::fail(e.to_string())
            })?;
            for target in &config.routes[0].targets {
                let crate::config::TargetAuth::SigV4 { keys: Some(auth), .. } = &target.auth else {
                    return Err(proptest::test_runner::TestCaseError::fail("no static keys"));
                };
                proptest::prop_assert_eq!(&auth.access_key_id, &id);
                proptest::prop_assert_eq!(&auth.secret_access_key, &key);
                proptest::prop_assert_eq!(auth.session_token.as_ref(), Some(&token));
            }
            let digest: [u8; 32] = sha2::Sha256::digest(key.as_bytes()).into();
            proptest::prop_assert_eq!(config.consumers[0].api_key_sha256, Some(digest));
        }
    }
}
