//! A JSON request body seen as its top-level fields, each still raw.
//!
//! Fields are borrowed from the request bytes and parsed one by one, so every type error names
//! its parameter, large fields (`messages`, tool schemas) are never copied into a `Value`, and
//! whatever is left at the end can be rejected by name instead of silently dropped.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::error::TranslateError;

pub(crate) struct Body<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Body<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, TranslateError> {
        let fields: Fields<'a> =
            serde_json::from_slice(bytes).map_err(|e| TranslateError::body_json(&e))?;
        Ok(Self { fields: fields.0 })
    }

    /// Removes a field; JSON `null` counts as absent, as OpenAI treats it.
    pub(crate) fn take_raw(&mut self, name: &str) -> Option<&'a RawValue> {
        let mut found = None;
        // Duplicate keys: the last one wins, as in serde_json's own `Value`.
        self.fields.retain(|(k, v)| {
            if k == name {
                found = Some(*v);
                false
            } else {
                true
            }
        });
        found.filter(|v| !is_null(v))
    }

    /// Removes and parses a field, naming it in any type error.
    pub(crate) fn take<T: Deserialize<'a>>(
        &mut self,
        name: &str,
    ) -> Result<Option<T>, TranslateError> {
        self.take_raw(name)
            .map(|raw| parse_raw(raw, name))
            .transpose()
    }

    /// The required `model`, which the gateway resolves to a route or a Bedrock model id.
    pub(crate) fn take_model(&mut self) -> Result<String, TranslateError> {
        match self.take::<Cow<'a, str>>("model")? {
            Some(model) if !model.is_empty() => Ok(model.into_owned()),
            Some(_) => Err(TranslateError::invalid("model", "must not be empty")),
            None => Err(TranslateError::invalid("model", "is required")),
        }
    }

    /// The fields not taken yet, in the client's order (duplicates included).
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&str, &'a RawValue)> {
        self.fields.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// Fails on the first field nobody took: OpenAI itself rejects unknown parameters, and
    /// ignoring one could change the output behind the client's back.
    pub(crate) fn reject_rest(self) -> Result<(), TranslateError> {
        match self.fields.into_iter().next() {
            None => Ok(()),
            Some((name, _)) => Err(TranslateError::unsupported(
                name.as_ref(),
                format!(
                    "unknown or unsupported parameter \"{name}\"; Bedrock-specific settings go in \
                     additionalModelRequestFields"
                ),
            )),
        }
    }
}

pub(crate) fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// Parses a raw fragment; the error names `param` and drops serde's position, which would point
/// into the fragment rather than the body.
pub(crate) fn parse_raw<'a, T: Deserialize<'a>>(
    raw: &'a RawValue,
    param: &str,
) -> Result<T, TranslateError> {
    serde_json::from_str(raw.get()).map_err(|e| TranslateError::invalid(param, strip_position(&e)))
}

pub(crate) fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// A translated request body written out, `capacity` bytes reserved up front (the client's body
/// and some headroom) so it is written without regrowing. A failure names `param`.
pub(crate) fn encode_request(
    request: &impl serde::Serialize,
    capacity: usize,
    param: &str,
) -> Result<Vec<u8>, TranslateError> {
    let mut out = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut out, request)
        .map_err(|e| TranslateError::invalid(param, e.to_string()))?;
    Ok(out)
}

/// The first significant byte of a raw value, telling its JSON type without parsing it.
pub(crate) fn first_byte(raw: &RawValue) -> u8 {
    raw.get().as_bytes().first().copied().unwrap_or(b' ')
}

struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    fields.push((key.0, map.next_value::<&'de RawValue>()?));
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(V)
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn take_parse_and_reject() {
        let bytes = br#"{"a":1,"b":null,"c":"x","d\u0041":true,"a":2}"#;
        let mut body = Body::parse(bytes).unwrap();
        assert_eq!(body.take::<u32>("a").unwrap(), Some(2));
        assert_eq!(body.take::<u32>("b").unwrap(), None);
        assert_eq!(body.take::<u32>("missing").unwrap(), None);
        let err = body.take::<u32>("c").unwrap_err();
        assert_eq!(err.param(), Some("c"));
        assert!(!err.to_string().contains("line"), "{err}");
        let err = body.reject_rest().unwrap_err();
        assert_eq!(err.param(), Some("dA"));
    }

    #[test]
    fn not_an_object() {
        assert!(matches!(
            Body::parse(b"[1]"),
            Err(TranslateError::Json { .. })
        ));
        let err = Body::parse(b"{\"a\":\n}").err().unwrap();
        assert!(err.to_string().contains("line 2 column 1"), "{err}");
    }
}
