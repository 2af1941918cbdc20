//! StartAsyncInvoke, GetAsyncInvoke and ListAsyncInvokes over an in-memory job list. Jobs complete
//! at once (there is no output to write); a repeated `clientRequestToken` returns the job it
//! started, as Bedrock does, so a retried start runs once.

use std::sync::{Mutex, PoisonError};

use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::errors::{ErrorKind, SimError};
use super::models::Family;

/// The account the simulator's ARNs name.
const ACCOUNT: &str = "123456789012";
/// Page size when a list names no `maxResults`.
const DEFAULT_PAGE: usize = 20;
/// Bedrock's largest `maxResults`.
const MAX_PAGE: usize = 1000;

#[derive(Debug, Clone)]
struct Job {
    arn: String,
    model_arn: String,
    client_request_token: Option<String>,
    submitted: OffsetDateTime,
    output_data_config: Value,
}

#[derive(Debug, Default)]
pub struct Jobs {
    jobs: Mutex<Vec<Job>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartRequest {
    model_id: Option<String>,
    model_input: Option<Value>,
    output_data_config: Option<Value>,
    client_request_token: Option<String>,
}

impl Jobs {
    pub fn start(&self, body: &[u8], region: &str) -> Result<Value, SimError> {
        let request: StartRequest = serde_json::from_slice(body)
            .map_err(|e| SimError::validation(format!("Malformed input request: {e}")))?;
        let (Some(model_id), Some(_), Some(output_data_config)) = (
            request.model_id,
            request.model_input,
            request.output_data_config,
        ) else {
            return Err(SimError::validation(
                "modelId, modelInput and outputDataConfig are required.",
            ));
        };
        Family::of(&model_id)?;
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(token) = &request.client_request_token
            && let Some(job) = jobs
                .iter()
                .find(|j| j.client_request_token.as_ref() == Some(token))
        {
            return Ok(json!({ "invocationArn": job.arn }));
        }
        // Strictly increasing, so listings have one order however fast jobs start.
        let now = OffsetDateTime::now_utc();
        let submitted = match jobs.last() {
            Some(last) if last.submitted >= now => last.submitted + time::Duration::milliseconds(1),
            _ => now,
        };
        let id: String = (0..12)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[fastrand::usize(..36)]))
            .collect();
        let arn = format!("arn:aws:bedrock:{region}:{ACCOUNT}:async-invoke/{id}");
        jobs.push(Job {
            arn: arn.clone(),
            model_arn: format!("arn:aws:bedrock:{region}::foundation-model/{model_id}"),
            client_request_token: request.client_request_token,
            submitted,
            output_data_config,
        });
        Ok(json!({ "invocationArn": arn }))
    }

    pub fn get(&self, arn: &str) -> Result<Value, SimError> {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.iter()
            .find(|j| j.arn == arn)
            .map(summary)
            .ok_or_else(|| {
                SimError::new(
                    ErrorKind::ResourceNotFound,
                    format!("The async invocation {arn} does not exist in this region."),
                )
            })
    }

    /// Newest first unless `sortOrder=Ascending`; `statusEquals`, `submitTimeAfter`,
    /// `submitTimeBefore`, `maxResults` and `nextToken` as Bedrock reads them.
    pub fn list(&self, query: &str) -> Result<Value, SimError> {
        let mut max = DEFAULT_PAGE;
        let mut offset = 0usize;
        let mut ascending = false;
        let mut status: Option<String> = None;
        let mut after: Option<OffsetDateTime> = None;
        let mut before: Option<OffsetDateTime> = None;
        let time = |v: &str| {
            OffsetDateTime::parse(v, &Rfc3339)
                .map_err(|_| SimError::validation(format!("Invalid timestamp {v}.")))
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            match name {
                "maxResults" => {
                    max = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| SimError::validation("maxResults must be 1 to 1000."))?;
                }
                "nextToken" => {
                    offset = value
                        .strip_prefix("sim-page-")
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| SimError::validation("Invalid nextToken."))?;
                }
                "sortOrder" => ascending = value == "Ascending",
                "statusEquals" => status = Some(value),
                "submitTimeAfter" => after = Some(time(&value)?),
                "submitTimeBefore" => before = Some(time(&value)?),
                _ => {}
            }
        }
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let mut matching: Vec<&Job> = jobs
            .iter()
            .filter(|_| status.as_deref().is_none_or(|s| s == "Completed"))
            .filter(|j| after.is_none_or(|t| j.submitted > t))
            .filter(|j| before.is_none_or(|t| j.submitted < t))
            .collect();
        if !ascending {
            matching.reverse();
        }
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(max)
            .map(|j| summary(j))
            .collect();
        let mut out = json!({ "asyncInvokeSummaries": page });
        if offset + max < matching.len() {
            out["nextToken"] = format!("sim-page-{}", offset + max).into();
        }
        Ok(out)
    }
}

fn summary(job: &Job) -> Value {
    let submitted = job.submitted.format(&Rfc3339).unwrap_or_default();
    let mut out = json!({
        "invocationArn": job.arn,
        "modelArn": job.model_arn,
        "status": "Completed",
        "submitTime": submitted,
        "lastModifiedTime": submitted,
        "endTime": submitted,
        "outputDataConfig": job.output_data_config,
    });
    if let Some(token) = &job.client_request_token {
        out["clientRequestToken"] = token.clone().into();
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn start(jobs: &Jobs, token: &str) -> String {
        let body = json!({"modelId": "amazon.nova-reel-v1:0", "modelInput": {}, "clientRequestToken": token,
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://b/o"}}});
        jobs.start(body.to_string().as_bytes(), "us-east-1")
            .unwrap()["invocationArn"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn a_repeated_token_returns_its_job_and_lists_page_newest_first() {
        let jobs = Jobs::default();
        let a = start(&jobs, "t1");
        assert_eq!(start(&jobs, "t1"), a);
        let b = start(&jobs, "t2");
        let c = start(&jobs, "t3");
        assert_eq!(jobs.get(&b).unwrap()["clientRequestToken"], "t2");
        let first = jobs.list("maxResults=2").unwrap();
        let arns: Vec<&str> = first["asyncInvokeSummaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["invocationArn"].as_str().unwrap())
            .collect();
        assert_eq!(arns, [c.as_str(), b.as_str()]);
        let next = first["nextToken"].as_str().unwrap();
        let second = jobs
            .list(&format!("maxResults=2&nextToken={next}"))
            .unwrap();
        assert_eq!(
            second["asyncInvokeSummaries"][0]["invocationArn"],
            a.as_str()
        );
        assert!(second.get("nextToken").is_none());
        assert!(
            jobs.get("arn:aws:bedrock:us-east-1:1:async-invoke/none")
                .is_err()
        );
    }
}
