//! OpenAI embeddings: one deterministic unit vector per input (the same text always embeds the same
//! way), as float arrays or, as the official SDKs ask by default, base64 of little-endian f32s.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use super::models::{count_words, embedding};
use super::openai_chat::Invalid;

/// text-embedding-3-large's size; the other OpenAI embedding models have `DEFAULT_DIMENSIONS`.
const LARGE_DIMENSIONS: usize = 3072;
const DEFAULT_DIMENSIONS: usize = 1536;

#[derive(Debug, Deserialize)]
struct Request {
    input: Input,
    dimensions: Option<usize>,
    #[serde(default)]
    encoding_format: Encoding,
}

/// Texts or token ids, one or many: embeddings' `input` and legacy completions' `prompt`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Input {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    #[default]
    Float,
    Base64,
}

impl Input {
    /// The texts to embed; token ids stand for themselves, joined by spaces.
    pub fn texts(self) -> Vec<String> {
        let tokens = |ids: Vec<u32>| {
            let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
            ids.join(" ")
        };
        match self {
            Self::One(text) => vec![text],
            Self::Many(texts) => texts,
            Self::Tokens(ids) => vec![tokens(ids)],
            Self::TokenLists(lists) => lists.into_iter().map(tokens).collect(),
        }
    }
}

/// The `list` of embeddings for `body`, made by `model`.
pub fn embed(body: Value, model: &str) -> Result<Value, Invalid> {
    let request: Request = serde_json::from_value(body).map_err(|e| {
        Invalid::new(
            "input",
            format!("Invalid request body: {e}; 'input' must be a string or an array of strings or token arrays, 'encoding_format' float or base64"),
        )
    })?;
    let dimensions = match request.dimensions {
        Some(0) => {
            return Err(Invalid::new(
                "dimensions",
                "Invalid value for 'dimensions': must be at least 1.",
            ));
        }
        Some(n) => n,
        None if model.contains("-large") => LARGE_DIMENSIONS,
        None => DEFAULT_DIMENSIONS,
    };
    let texts = request.input.texts();
    if texts.is_empty() || texts.iter().any(String::is_empty) {
        return Err(Invalid::new(
            "input",
            "'$.input' is invalid: inputs must be non-empty.",
        ));
    }
    let tokens: u64 = texts.iter().map(|t| count_words(t).max(1)).sum();
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let vector = embedding(text, dimensions, true);
            let encoded = match request.encoding_format {
                Encoding::Float => json!(vector),
                Encoding::Base64 => {
                    let bytes: Vec<u8> = vector
                        .iter()
                        .flat_map(|v| (*v as f32).to_le_bytes())
                        .collect();
                    json!(STANDARD.encode(bytes))
                }
            };
            json!({ "object": "embedding", "index": index, "embedding": encoded })
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn one_unit_vector_per_input_the_same_for_the_same_text() {
        let out = embed(
            json!({ "input": ["a b", "c", "a b"], "dimensions": 8 }),
            "text-embedding-3-small",
        )
        .unwrap();
        let data = out["data"].as_array().unwrap();
        assert_eq!(data.len(), 3);
        assert_eq!(data[0]["embedding"], data[2]["embedding"]);
        assert_ne!(data[0]["embedding"], data[1]["embedding"]);
        let v: Vec<f64> = serde_json::from_value(data[1]["embedding"].clone()).unwrap();
        assert_eq!(v.len(), 8);
        assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(out["usage"]["prompt_tokens"], 5);
        assert_eq!(out["model"], "text-embedding-3-small");
    }

    #[test]
    fn base64_is_little_endian_f32_of_the_float_answer() {
        let float = embed(json!({ "input": "x", "dimensions": 4 }), "m").unwrap();
        let b64 = embed(
            json!({ "input": "x", "dimensions": 4, "encoding_format": "base64" }),
            "m",
        )
        .unwrap();
        let bytes = STANDARD
            .decode(b64["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        let decoded: Vec<f32> = bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let floats: Vec<f64> =
            serde_json::from_value(float["data"][0]["embedding"].clone()).unwrap();
        let expected: Vec<f32> = floats.iter().map(|v| *v as f32).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn default_size_follows_the_model_and_bad_input_is_refused() {
        let large = embed(json!({ "input": "x" }), "text-embedding-3-large").unwrap();
        assert_eq!(
            large["data"][0]["embedding"].as_array().unwrap().len(),
            LARGE_DIMENSIONS
        );
        assert_eq!(
            embed(json!({ "input": "" }), "m").unwrap_err().param,
            "input"
        );
        assert_eq!(
            embed(json!({ "input": 3 }), "m").unwrap_err().param,
            "input"
        );
        assert_eq!(
            embed(json!({ "input": "x", "dimensions": 0 }), "m")
                .unwrap_err()
                .param,
            "dimensions"
        );
        let tokens = embed(json!({ "input": [[1, 2], [3]] }), "m").unwrap();
        assert_eq!(tokens["data"].as_array().unwrap().len(), 2);
    }
}
