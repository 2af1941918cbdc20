//! OpenAI `POST /v1/embeddings` over Bedrock `InvokeModel` for Titan and Cohere embedders.
//!
//! - Titan embeds one text per call, so N inputs become N upstream bodies; Cohere takes up to
//!   `COHERE_MAX_BATCH` texts per call, so inputs are split into batches. The gateway sends the
//!   bodies in order and hands the responses back in the same order.
//! - Titan v2 is asked for `normalize: true` because OpenAI embeddings are unit length and
//!   clients compute cosine similarity as a plain dot product.
//! - Token counts: Titan reports `inputTextTokenCount`. Cohere's body has none, so the caller
//!   passes Bedrock's `X-Amzn-Bedrock-Input-Token-Count` header; without it the count is
//!   estimated at one token per four characters of the echoed texts (only metrics and token
//!   limits depend on it).
//! - Refused: token-id inputs, `dimensions` where the model has no such knob, `input_type` for
//!   Titan. Ignored: `user`.

use std::borrow::Cow;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::body::{Body, first_byte, parse_raw};
use super::error::TranslateError;
use super::inference::StrCow;
use super::usage::Usage;
pub use crate::config::EmbeddingFamily;

/// Cohere Embed on Bedrock accepts at most 96 texts per call.
pub const COHERE_MAX_BATCH: usize = 96;
/// Cohere's `input_type` when the client names none: embedding documents is the common case.
pub const DEFAULT_COHERE_INPUT_TYPE: &str = "search_document";
const TITAN_V2_DIMENSIONS: [u32; 3] = [256, 512, 1024];
const CHARS_PER_TOKEN_ESTIMATE: u64 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncodingFormat {
    #[default]
    Float,
    /// Base64 of the little-endian f32 bytes, as OpenAI sends it (and its Python SDK asks for).
    Base64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub encoding_format: EncodingFormat,
    pub input_count: usize,
    /// One `InvokeModel` body per upstream call, in input order.
    pub upstream_bodies: Vec<Vec<u8>>,
}

/// The `model` of an embeddings request, read first because the route decides the family.
pub fn embeddings_model(body: &[u8]) -> Result<String, TranslateError> {
    Body::parse(body)?.take_model()
}

/// `max_inputs` bounds the upstream fan-out: Titan makes one call per input.
pub fn embeddings_request(
    body: &[u8],
    family: EmbeddingFamily,
    max_inputs: usize,
) -> Result<EmbeddingsRequest, TranslateError> {
    let mut body = Body::parse(body)?;
    let model = body.take_model()?;
    let inputs = take_input(&mut body, max_inputs)?;
    let encoding_format = match body.take::<Cow<'_, str>>("encoding_format")?.as_deref() {
        None | Some("float") => EncodingFormat::Float,
        Some("base64") => EncodingFormat::Base64,
        Some(other) => {
            return Err(TranslateError::invalid(
                "encoding_format",
                format!("unknown encoding_format \"{other}\"; expected float or base64"),
            ));
        }
    };
    let dimensions = body.take::<u32>("dimensions")?;
    let input_type = body.take::<Cow<'_, str>>("input_type")?;
    let _user: Option<Cow<'_, str>> = body.take("user")?;
    body.reject_rest()?;

    let upstream_bodies = match family {
        EmbeddingFamily::TitanV1 | EmbeddingFamily::TitanV2 => {
            if input_type.is_some() {
                return Err(TranslateError::unsupported(
                    "input_type",
                    "input_type applies to Cohere models only",
                ));
            }
            let (dimensions, normalize) = match family {
                EmbeddingFamily::TitanV2 => {
                    if let Some(d) = dimensions.filter(|d| !TITAN_V2_DIMENSIONS.contains(d)) {
                        return Err(TranslateError::invalid(
                            "dimensions",
                            format!("{d} is not supported by Titan v2; use 256, 512 or 1024"),
                        ));
                    }
                    (dimensions, Some(true))
                }
                _ => {
                    if dimensions.is_some() {
                        return Err(TranslateError::unsupported(
                            "dimensions",
                            "Titan v1 embeddings have a fixed size",
                        ));
                    }
                    (None, None)
                }
            };
            inputs
                .iter()
                .map(|text| {
                    to_body(&TitanRequest {
                        input_text: text,
                        dimensions,
                        normalize,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        EmbeddingFamily::Cohere => {
            if dimensions.is_some() {
                return Err(TranslateError::unsupported(
                    "dimensions",
                    "dimensions is not supported for Cohere models",
                ));
            }
            let input_type = input_type.unwrap_or(Cow::Borrowed(DEFAULT_COHERE_INPUT_TYPE));
            if !matches!(
                input_type.as_ref(),
                "search_document" | "search_query" | "classification" | "clustering"
            ) {
                return Err(TranslateError::invalid(
                    "input_type",
                    format!(
                        "unknown input_type \"{input_type}\"; expected search_document, search_query, classification or clustering"
                    ),
                ));
            }
            inputs
                .chunks(COHERE_MAX_BATCH)
                .map(|texts| {
                    to_body(&CohereRequest {
                        texts,
                        input_type: &input_type,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    Ok(EmbeddingsRequest {
        model,
        encoding_format,
        input_count: inputs.len(),
        upstream_bodies,
    })
}

fn take_input<'a>(
    body: &mut Body<'a>,
    max_inputs: usize,
) -> Result<Vec<Cow<'a, str>>, TranslateError> {
    let raw = body
        .take_raw("input")
        .ok_or_else(|| TranslateError::invalid("input", "is required"))?;
    let inputs: Vec<Cow<'a, str>> = match first_byte(raw) {
        b'"' => vec![parse_raw(raw, "input")?],
        b'[' => {
            let items: Vec<&'a RawValue> = parse_raw(raw, "input")?;
            if items.iter().any(|i| first_byte(i) != b'"') {
                return Err(TranslateError::unsupported(
                    "input",
                    "token id inputs are not supported; send text",
                ));
            }
            parse_raw::<Vec<StrCow<'a>>>(raw, "input")?
                .into_iter()
                .map(|s| s.0)
                .collect()
        }
        _ => {
            return Err(TranslateError::invalid(
                "input",
                "must be a string or an array of strings",
            ));
        }
    };
    if inputs.is_empty() {
        return Err(TranslateError::invalid("input", "must not be empty"));
    }
    if inputs.len() > max_inputs {
        return Err(TranslateError::invalid(
            "input",
            format!(
                "{} inputs is more than the {max_inputs} allowed per request \
                 (server.max_embedding_inputs); split the batch",
                inputs.len()
            ),
        ));
    }
    if let Some(i) = inputs.iter().position(|t| t.is_empty()) {
        return Err(TranslateError::invalid(
            format!("input[{i}]"),
            "must not be empty",
        ));
    }
    Ok(inputs)
}

fn to_body<T: Serialize>(value: &T) -> Result<Vec<u8>, TranslateError> {
    serde_json::to_vec(value).map_err(|e| TranslateError::invalid("input", e.to_string()))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TitanRequest<'a> {
    input_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    normalize: Option<bool>,
}

#[derive(Serialize)]
struct CohereRequest<'a> {
    texts: &'a [Cow<'a, str>],
    input_type: &'a str,
}

/// One upstream `InvokeModel` answer.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamEmbedding<'a> {
    pub body: &'a [u8],
    /// `X-Amzn-Bedrock-Input-Token-Count`, when the response had it.
    pub input_tokens: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingsResponse {
    pub body: Vec<u8>,
    pub usage: Usage,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanResponse {
    embedding: Vec<f32>,
    #[serde(default)]
    input_text_token_count: Option<u64>,
}

#[derive(Deserialize)]
struct CohereResponse<'a> {
    embeddings: CohereEmbeddings,
    #[serde(borrow, default)]
    texts: Vec<StrCow<'a>>,
}

/// Cohere answers with a bare list, or with a map by type when `embedding_types` was set (and
/// always for newer models).
#[derive(Deserialize)]
#[serde(untagged)]
enum CohereEmbeddings {
    List(Vec<Vec<f32>>),
    ByType { float: Vec<Vec<f32>> },
}

pub fn embeddings_response(
    model: &str,
    family: EmbeddingFamily,
    upstream: &[UpstreamEmbedding<'_>],
    encoding_format: EncodingFormat,
) -> Result<EmbeddingsResponse, TranslateError> {
    let mut vectors: Vec<Vec<f32>> = Vec::new();
    let mut tokens = 0u64;
    for (call, response) in upstream.iter().enumerate() {
        let bad = |e: serde_json::Error| {
            TranslateError::upstream(format!("embedding response {call}: {e}"))
        };
        match family {
            EmbeddingFamily::TitanV1 | EmbeddingFamily::TitanV2 => {
                let r: TitanResponse = serde_json::from_slice(response.body).map_err(bad)?;
                tokens += response
                    .input_tokens
                    .or(r.input_text_token_count)
                    .unwrap_or(0);
                vectors.push(r.embedding);
            }
            EmbeddingFamily::Cohere => {
                let r: CohereResponse<'_> = serde_json::from_slice(response.body).map_err(bad)?;
                tokens += response.input_tokens.unwrap_or_else(|| {
                    r.texts
                        .iter()
                        .map(|t| (t.0.chars().count() as u64).div_ceil(CHARS_PER_TOKEN_ESTIMATE))
                        .sum()
                });
                match r.embeddings {
                    CohereEmbeddings::List(list) | CohereEmbeddings::ByType { float: list } => {
                        vectors.extend(list)
                    }
                }
            }
        }
    }
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| EmbeddingItem {
            object: "embedding",
            index,
            embedding: match encoding_format {
                EncodingFormat::Float => Embedding::Float(v),
                EncodingFormat::Base64 => Embedding::Base64(to_base64(&v)),
            },
        })
        .collect();
    let usage = Usage {
        input_tokens: tokens,
        ..Usage::default()
    };
    let list = EmbeddingList {
        object: "list",
        data,
        model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    let body = serde_json::to_vec(&list)
        .map_err(|e| TranslateError::upstream(format!("could not encode embeddings: {e}")))?;
    Ok(EmbeddingsResponse { body, usage })
}

fn to_base64(v: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(v.len() * 4);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'a str,
    usage: EmbeddingUsage,
}

/// OpenAI's embeddings usage has no completion tokens, unlike `OpenAiUsage`.
#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: Embedding,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Embedding {
    Float(Vec<f32>),
    Base64(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::config::defaults::MAX_EMBEDDING_INPUTS as MAX_INPUTS;
    use serde_json::{Value, json};

    fn request(
        body: Value,
        family: EmbeddingFamily,
    ) -> Result<(EmbeddingsRequest, Vec<Value>), TranslateError> {
        let r = embeddings_request(body.to_string().as_bytes(), family, MAX_INPUTS)?;
        let bodies = r
            .upstream_bodies
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect();
        Ok((r, bodies))
    }

    #[test]
    fn titan_v2_one_body_per_input() {
        let (r, bodies) = request(
            json!({"model": "titan", "input": ["a", "b", "c"], "dimensions": 256, "encoding_format": "base64", "user": "u"}),
            EmbeddingFamily::TitanV2,
        )
        .unwrap();
        assert_eq!(r.model, "titan");
        assert_eq!(r.input_count, 3);
        assert_eq!(r.encoding_format, EncodingFormat::Base64);
        assert_eq!(
            bodies,
            vec![
                json!({"inputText": "a", "dimensions": 256, "normalize": true}),
                json!({"inputText": "b", "dimensions": 256, "normalize": true}),
                json!({"inputText": "c", "dimensions": 256, "normalize": true}),
            ]
        );
        let (r, bodies) = request(
            json!({"model": "t", "input": "solo"}),
            EmbeddingFamily::TitanV2,
        )
        .unwrap();
        assert_eq!(r.encoding_format, EncodingFormat::Float);
        assert_eq!(
            bodies,
            vec![json!({"inputText": "solo", "normalize": true})]
        );
    }

    #[test]
    fn titan_v1_and_dimension_rules() {
        let (_, bodies) = request(
            json!({"model": "t", "input": "x"}),
            EmbeddingFamily::TitanV1,
        )
        .unwrap();
        assert_eq!(bodies, vec![json!({"inputText": "x"})]);
        let e = request(
            json!({"model": "t", "input": "x", "dimensions": 512}),
            EmbeddingFamily::TitanV1,
        )
        .err()
        .unwrap();
        assert!(matches!(e, TranslateError::Unsupported { .. }));
        let e = request(
            json!({"model": "t", "input": "x", "dimensions": 300}),
            EmbeddingFamily::TitanV2,
        )
        .err()
        .unwrap();
        assert!(matches!(e, TranslateError::Invalid { .. }));
        assert_eq!(e.param(), Some("dimensions"));
        for d in [256, 512, 1024] {
            assert!(
                request(
                    json!({"model": "t", "input": "x", "dimensions": d}),
                    EmbeddingFamily::TitanV2
                )
                .is_ok()
            );
        }
        let e = request(
            json!({"model": "t", "input": "x", "input_type": "search_query"}),
            EmbeddingFamily::TitanV2,
        )
        .err()
        .unwrap();
        assert_eq!(e.param(), Some("input_type"));
    }

    #[test]
    fn cohere_batches_of_96() {
        let inputs: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
        let (r, bodies) = request(
            json!({"model": "c", "input": inputs}),
            EmbeddingFamily::Cohere,
        )
        .unwrap();
        assert_eq!(r.input_count, 200);
        assert_eq!(bodies.len(), 3);
        assert_eq!(bodies[0]["texts"].as_array().unwrap().len(), 96);
        assert_eq!(bodies[1]["texts"].as_array().unwrap().len(), 96);
        assert_eq!(bodies[2]["texts"].as_array().unwrap().len(), 8);
        assert_eq!(bodies[2]["texts"][7], "t199");
        assert_eq!(bodies[0]["input_type"], "search_document");
        let (_, bodies) = request(
            json!({"model": "c", "input": "q", "input_type": "search_query"}),
            EmbeddingFamily::Cohere,
        )
        .unwrap();
        assert_eq!(
            bodies,
            vec![json!({"texts": ["q"], "input_type": "search_query"})]
        );
        let e = request(
            json!({"model": "c", "input": "q", "input_type": "poetry"}),
            EmbeddingFamily::Cohere,
        )
        .err()
        .unwrap();
        assert_eq!(e.param(), Some("input_type"));
        let e = request(
            json!({"model": "c", "input": "q", "dimensions": 256}),
            EmbeddingFamily::Cohere,
        )
        .err()
        .unwrap();
        assert!(matches!(e, TranslateError::Unsupported { .. }));
    }

    #[test]
    fn input_validation() {
        let too_many: Vec<&str> = vec!["x"; MAX_INPUTS + 1];
        for (body, param, unsupported) in [
            (json!({"model": "t"}), "input", false),
            (json!({"model": "t", "input": []}), "input", false),
            (json!({"model": "t", "input": 3}), "input", false),
            (json!({"model": "t", "input": ["a", ""]}), "input[1]", false),
            (json!({"model": "t", "input": too_many}), "input", false),
            (json!({"model": "t", "input": [1, 2, 3]}), "input", true),
            (json!({"model": "t", "input": [[1, 2], [3]]}), "input", true),
            (
                json!({"model": "t", "input": "x", "encoding_format": "int8"}),
                "encoding_format",
                false,
            ),
            (
                json!({"model": "t", "input": "x", "extra": 1}),
                "extra",
                true,
            ),
            (json!({"input": "x"}), "model", false),
        ] {
            let e = request(body.clone(), EmbeddingFamily::TitanV2)
                .err()
                .unwrap();
            assert_eq!(e.param(), Some(param), "{body}");
            assert_eq!(
                matches!(e, TranslateError::Unsupported { .. }),
                unsupported,
                "{body}: {e:?}"
            );
        }
        let e = request(
            json!({"model": "t", "input": too_many}),
            EmbeddingFamily::TitanV2,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("2048"), "{e}");
        let three = json!({"model": "t", "input": ["a", "b", "c"]}).to_string();
        let e = embeddings_request(three.as_bytes(), EmbeddingFamily::TitanV2, 2)
            .err()
            .unwrap();
        assert_eq!(e.param(), Some("input"));
        assert!(e.to_string().contains("more than the 2 allowed"), "{e}");
        assert!(embeddings_request(three.as_bytes(), EmbeddingFamily::TitanV2, 3).is_ok());
        assert!(
            request(
                json!({"model": "t", "input": vec!["x"; MAX_INPUTS]}),
                EmbeddingFamily::TitanV2
            )
            .is_ok()
        );
    }

    fn respond(
        family: EmbeddingFamily,
        bodies: &[(Value, Option<u64>)],
        format: EncodingFormat,
    ) -> (EmbeddingsResponse, Value) {
        let raw: Vec<Vec<u8>> = bodies
            .iter()
            .map(|(b, _)| b.to_string().into_bytes())
            .collect();
        let upstream: Vec<UpstreamEmbedding<'_>> = raw
            .iter()
            .zip(bodies)
            .map(|(body, (_, tokens))| UpstreamEmbedding {
                body,
                input_tokens: *tokens,
            })
            .collect();
        let r = embeddings_response("emb", family, &upstream, format).unwrap();
        let v = serde_json::from_slice(&r.body).unwrap();
        (r, v)
    }

    #[test]
    fn titan_response_float() {
        let (r, v) = respond(
            EmbeddingFamily::TitanV2,
            &[
                (
                    json!({"embedding": [0.5, -0.25], "inputTextTokenCount": 3}),
                    None,
                ),
                (
                    json!({"embedding": [1.0, 0.0], "inputTextTokenCount": 4}),
                    None,
                ),
            ],
            EncodingFormat::Float,
        );
        assert_eq!(
            v,
            json!({"object": "list", "data": [
                {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]},
                {"object": "embedding", "index": 1, "embedding": [1.0, 0.0]}],
                "model": "emb", "usage": {"prompt_tokens": 7, "total_tokens": 7}})
        );
        assert_eq!(r.usage.input_tokens, 7);
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let (_, v) = respond(
            EmbeddingFamily::TitanV1,
            &[(
                json!({"embedding": [1.0, -2.5, 0.1], "inputTextTokenCount": 1}),
                None,
            )],
            EncodingFormat::Base64,
        );
        let b64 = v["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let floats: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(floats, vec![1.0, -2.5, 0.1]);
        assert_eq!(&bytes[..4], &[0x00, 0x00, 0x80, 0x3f]);
    }

    #[test]
    fn cohere_response_shapes_and_tokens() {
        let (r, v) = respond(
            EmbeddingFamily::Cohere,
            &[
                (
                    json!({"id": "x", "response_type": "embeddings_floats", "texts": ["aaaa", "bbbbbbbbb"],
                        "embeddings": [[0.1, 0.2], [0.3, 0.4]]}),
                    None,
                ),
                (
                    json!({"id": "y", "response_type": "embeddings_by_type", "texts": ["c"],
                        "embeddings": {"float": [[0.5, 0.6]]}}),
                    Some(10),
                ),
            ],
            EncodingFormat::Float,
        );
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 3);
        assert_eq!(data[2]["index"], 2);
        assert_eq!(data[2]["embedding"], json!([0.5, 0.6]));
        // 4 chars -> 1 token, 9 chars -> 3 tokens, then the header's 10.
        assert_eq!(r.usage.input_tokens, 14);
        assert_eq!(v["usage"], json!({"prompt_tokens": 14, "total_tokens": 14}));
    }

    #[test]
    fn bad_upstream_body() {
        let e = embeddings_response(
            "m",
            EmbeddingFamily::TitanV2,
            &[UpstreamEmbedding {
                body: b"{}",
                input_tokens: None,
            }],
            EncodingFormat::Float,
        )
        .unwrap_err();
        assert_eq!(e.status(), 502);
    }
}
