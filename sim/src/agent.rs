//! Bedrock Agent Runtime's knowledge-base calls, deterministically: Rerank scores each source by
//! the share of query words it holds; Retrieve and RetrieveAndGenerate answer with passages and
//! text that name the knowledge base and region, so a test can see where a request went.

use bytes::Bytes;
use serde_json::{Value, json};

use super::errors::SimError;
use super::eventstream::event_frame;

/// Passages Retrieve returns.
const PASSAGES: usize = 3;

fn field<'a>(body: &'a Value, pointer: &str) -> Result<&'a Value, SimError> {
    body.pointer(pointer).ok_or_else(|| {
        SimError::validation(format!(
            "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must not be null",
            pointer.trim_start_matches('/').replace('/', ".")
        ))
    })
}

fn text<'a>(body: &'a Value, pointer: &str) -> Result<&'a str, SimError> {
    field(body, pointer)?
        .as_str()
        .ok_or_else(|| SimError::validation(format!("{pointer} must be a string.")))
}

fn parse(body: &[u8]) -> Result<Value, SimError> {
    serde_json::from_slice(body)
        .map_err(|e| SimError::validation(format!("Malformed input request: {e}")))
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

pub fn rerank(body: &[u8]) -> Result<Value, SimError> {
    let body = parse(body)?;
    let query = text(&body, "/queries/0/textQuery/text")?;
    let sources = field(&body, "/sources")?
        .as_array()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SimError::validation("sources must list at least one document."))?;
    let wanted = words(query);
    let mut results: Vec<(usize, f64, &str)> = Vec::with_capacity(sources.len());
    for (index, source) in sources.iter().enumerate() {
        let doc = source
            .pointer("/inlineDocumentSource/textDocument/text")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let have = words(doc);
        let hits = wanted.iter().filter(|w| have.contains(w)).count();
        let score = if wanted.is_empty() {
            0.0
        } else {
            hits as f64 / wanted.len() as f64
        };
        results.push((index, score, doc));
    }
    // Best first; the earlier source wins a tie.
    results.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let keep = body
        .pointer("/rerankingConfiguration/bedrockRerankingConfiguration/numberOfResults")
        .and_then(Value::as_u64)
        .map_or(results.len(), |n| usize::try_from(n).unwrap_or(usize::MAX));
    let results: Vec<Value> = results
        .into_iter()
        .take(keep)
        .map(|(index, score, doc)| {
            json!({"index": index, "relevanceScore": score,
                   "document": {"type": "TEXT", "textDocument": {"text": doc}}})
        })
        .collect();
    Ok(json!({ "results": results }))
}

fn passage(kb: &str, region: &str, query: &str, i: usize) -> Value {
    json!({
        "content": {"type": "TEXT", "text": format!("Passage {i} of knowledge base {kb} in {region} about: {query}")},
        "location": {"type": "S3", "s3Location": {"uri": format!("s3://sim-{region}/{kb}/doc-{i}.txt")}},
        "score": 1.0 - 0.1 * i as f64,
        "metadata": {}
    })
}

pub fn retrieve(body: &[u8], kb: &str, region: &str) -> Result<Value, SimError> {
    let body = parse(body)?;
    let query = text(&body, "/retrievalQuery/text")?;
    let results: Vec<Value> = (0..PASSAGES)
        .map(|i| passage(kb, region, query, i))
        .collect();
    Ok(json!({ "retrievalResults": results }))
}

/// What RetrieveAndGenerate answers: the session, the text and the passage it cites.
pub struct Generated {
    pub session_id: String,
    pub text: String,
    citation: Value,
}

pub fn generate(body: &[u8], region: &str) -> Result<Generated, SimError> {
    let body = parse(body)?;
    let input = text(&body, "/input/text")?;
    let kb = text(
        &body,
        "/retrieveAndGenerateConfiguration/knowledgeBaseConfiguration/knowledgeBaseId",
    )?;
    text(
        &body,
        "/retrieveAndGenerateConfiguration/knowledgeBaseConfiguration/modelArn",
    )?;
    let session_id = body.get("sessionId").and_then(Value::as_str).map_or_else(
        || format!("sim-session-{:016x}", fastrand::u64(..)),
        str::to_owned,
    );
    let text = format!("Answer from knowledge base {kb} in {region}: {input}");
    let reference = passage(kb, region, input, 0);
    let citation = json!({
        "generatedResponsePart": {"textResponsePart": {"text": text, "span": {"start": 0, "end": text.len().saturating_sub(1)}}},
        "retrievedReferences": [{"content": reference["content"], "location": reference["location"], "metadata": {}}]
    });
    Ok(Generated {
        session_id,
        text,
        citation,
    })
}

pub fn generated_response(generated: &Generated) -> Value {
    json!({
        "sessionId": generated.session_id,
        "output": {"text": generated.text},
        "citations": [generated.citation]
    })
}

/// The answer as `output` events of a few words each, then its `citation`.
pub fn generated_frames(generated: &Generated) -> Vec<Bytes> {
    let words: Vec<&str> = generated.text.split_inclusive(' ').collect();
    let mut frames: Vec<Bytes> = words
        .chunks(3)
        .map(|chunk| event_frame("output", &json!({ "text": chunk.concat() })))
        .collect();
    frames.push(event_frame("citation", &generated.citation));
    frames
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rerank_puts_the_best_match_first() {
        let body = json!({
            "queries": [{"type": "TEXT", "textQuery": {"text": "red apples"}}],
            "sources": [
                {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": "blue sky"}}},
                {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": "red apples grow"}}}
            ],
            "rerankingConfiguration": {"type": "BEDROCK_RERANKING_MODEL",
                "bedrockRerankingConfiguration": {"numberOfResults": 1, "modelConfiguration": {"modelArn": "m"}}}
        });
        let out = rerank(body.to_string().as_bytes()).unwrap();
        assert_eq!(out["results"].as_array().unwrap().len(), 1);
        assert_eq!(out["results"][0]["index"], 1);
        assert_eq!(out["results"][0]["relevanceScore"], 1.0);
    }

    #[test]
    fn generation_names_the_knowledge_base_and_needs_one() {
        let body = br#"{"input":{"text":"q"},"retrieveAndGenerateConfiguration":{"type":"KNOWLEDGE_BASE","knowledgeBaseConfiguration":{"knowledgeBaseId":"KB1","modelArn":"m"}}}"#;
        let generated = generate(body, "eu-west-1").unwrap();
        assert_eq!(
            generated.text,
            "Answer from knowledge base KB1 in eu-west-1: q"
        );
        assert_eq!(generated_frames(&generated).len(), 4);
        assert!(generate(br#"{"input":{"text":"q"}}"#, "r").is_err());
    }
}
