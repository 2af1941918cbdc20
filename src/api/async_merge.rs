//! ListAsyncInvokes across regions: one page merged from each region's page, and a `nextToken`
//! that resumes every region where this page left it.
//!
//! Each region is asked for its next `skip + maxResults` summaries after its own token; the first
//! `skip` (already returned on an earlier page) are dropped. The summaries are merged by
//! `submitTime` (newest first, or oldest first with `sortOrder=Ascending`) and cut at
//! `maxResults`. A region that has more pages bounds the merge: nothing older (newer, ascending)
//! than its last summary may be returned yet, since its next page could hold something that sorts
//! first. The gateway's `nextToken` is, per region still to read, the token this page sent it and
//! how many of that page's summaries were returned; a region it does not name is finished.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Bedrock's largest page; `skip + maxResults` must stay within it.
pub const MAX_PAGE: u32 = 1000;
/// The largest `maxResults` taken from a client, so that `skip + maxResults` (each at most this)
/// never exceeds a region's largest page. A smaller page is fine: clients follow `nextToken`.
pub const MAX_RESULTS: u32 = MAX_PAGE / 2;

/// Where one region's listing stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionCursor {
    /// Bedrock's token for the page to ask for; `None` for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Summaries of that page already returned.
    #[serde(default)]
    pub skip: u32,
}

/// Every region still to read, by region.
pub type Cursor = BTreeMap<String, RegionCursor>;

pub fn encode_cursor(cursor: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

/// `None` when the token was not written by [`encode_cursor`].
/// The cursor a client sent back, if it is one of ours. A `skip` past what one page can hold was
/// never issued by the gateway (and would overflow `maxResults`), so it is refused like garbage.
pub fn decode_cursor(token: &str) -> Option<Cursor> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let cursor: Cursor = serde_json::from_slice(&bytes).ok()?;
    cursor
        .values()
        .all(|region| region.skip <= MAX_RESULTS)
        .then_some(cursor)
}

/// One region's answer to the page it was asked for.
#[derive(Debug)]
pub struct RegionPage {
    pub region: String,
    /// The cursor the page was asked with.
    pub asked: RegionCursor,
    /// Its summaries with the first `asked.skip` already dropped.
    pub summaries: Vec<Value>,
    /// Bedrock's token for the region's next page.
    pub next_token: Option<String>,
}

#[derive(Debug, PartialEq)]
pub struct Merged {
    pub summaries: Vec<Value>,
    pub next: Cursor,
}

pub fn merge(pages: Vec<RegionPage>, max_results: Option<u32>, ascending: bool) -> Merged {
    let time_of = |s: &Value| {
        s.get("submitTime")
            .and_then(Value::as_str)
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
    };
    // Newest first unless ascending; a summary without a readable time sorts last.
    let before = |a: Option<OffsetDateTime>, b: Option<OffsetDateTime>| match (a, b) {
        (Some(a), Some(b)) => {
            if ascending {
                a < b
            } else {
                a > b
            }
        }
        (Some(_), None) => true,
        (None, _) => false,
    };
    // The bound regions with more pages set: the last summary of each, the one sorting first
    // binding hardest.
    let mut bound: Option<Option<OffsetDateTime>> = None;
    for page in pages.iter().filter(|p| p.next_token.is_some()) {
        let last = page.summaries.last().and_then(time_of);
        bound = Some(match bound {
            Some(b) if !before(last, b) => b,
            _ => last,
        });
    }
    let mut all: Vec<(usize, Option<OffsetDateTime>, Value)> = pages
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.summaries.iter().map(move |s| (i, s)))
        .map(|(i, s)| (i, time_of(s), s.clone()))
        .collect();
    // Stable, so a region's own order breaks ties.
    all.sort_by(|a, b| {
        if before(a.1, b.1) {
            std::cmp::Ordering::Less
        } else if before(b.1, a.1) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    let limit = max_results.map_or(usize::MAX, |m| m as usize);
    let mut taken = vec![0u32; pages.len()];
    let mut summaries = Vec::new();
    for (i, time, summary) in all {
        if summaries.len() >= limit || bound.is_some_and(|b| before(b, time)) {
            break;
        }
        taken[i] += 1;
        summaries.push(summary);
    }
    let mut next = Cursor::new();
    for (page, taken) in pages.into_iter().zip(taken) {
        let fetched = u32::try_from(page.summaries.len()).unwrap_or(u32::MAX);
        let cursor = if taken < fetched {
            Some(RegionCursor {
                token: page.asked.token,
                skip: page.asked.skip + taken,
            })
        } else {
            page.next_token.map(|token| RegionCursor {
                token: Some(token),
                skip: 0,
            })
        };
        if let Some(cursor) = cursor {
            next.insert(page.region, cursor);
        }
    }
    Merged { summaries, next }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn summary(arn: &str, minute: u32) -> Value {
        json!({"invocationArn": arn, "submitTime": format!("2025-01-01T00:{minute:02}:00Z")})
    }

    fn page(region: &str, skip: u32, items: &[(&str, u32)], next: Option<&str>) -> RegionPage {
        RegionPage {
            region: region.into(),
            asked: RegionCursor { token: None, skip },
            summaries: items.iter().map(|(a, m)| summary(a, *m)).collect(),
            next_token: next.map(str::to_owned),
        }
    }

    fn arns(m: &Merged) -> Vec<&str> {
        m.summaries
            .iter()
            .map(|s| s["invocationArn"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn newest_first_across_regions_cut_at_max_results() {
        let merged = merge(
            vec![
                page("eu-west-1", 0, &[("e3", 30), ("e1", 10)], None),
                page("us-east-1", 0, &[("u4", 40), ("u2", 20)], None),
            ],
            Some(3),
            false,
        );
        assert_eq!(arns(&merged), ["u4", "e3", "u2"]);
        // eu-west-1 has e1 left on the page it was asked for; us-east-1 is done.
        assert_eq!(
            merged.next,
            Cursor::from([(
                "eu-west-1".to_owned(),
                RegionCursor {
                    token: None,
                    skip: 1
                }
            )])
        );
        let round = decode_cursor(&encode_cursor(&merged.next)).unwrap();
        assert_eq!(round, merged.next);
    }

    #[test]
    fn a_region_with_more_pages_holds_back_older_summaries() {
        let merged = merge(
            vec![
                page("eu-west-1", 0, &[("e5", 50), ("e3", 30)], Some("eu-2")),
                page("us-east-1", 0, &[("u4", 40), ("u1", 10)], None),
            ],
            None,
            false,
        );
        // u1 (minute 10) could be preceded by eu-west-1's next page (minutes 11..30).
        assert_eq!(arns(&merged), ["e5", "u4", "e3"]);
        assert_eq!(merged.next["eu-west-1"].token.as_deref(), Some("eu-2"));
        assert_eq!(merged.next["eu-west-1"].skip, 0);
        assert_eq!(merged.next["us-east-1"].skip, 1);
    }

    #[test]
    fn ascending_order_is_honoured() {
        let merged = merge(
            vec![
                page("eu-west-1", 0, &[("e1", 10), ("e3", 30)], None),
                page("us-east-1", 0, &[("u2", 20)], None),
            ],
            None,
            true,
        );
        assert_eq!(arns(&merged), ["e1", "u2", "e3"]);
        assert!(merged.next.is_empty());
    }

    #[test]
    fn foreign_tokens_are_not_cursors() {
        assert!(decode_cursor("not-ours!").is_none());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode(b"[1,2]")).is_none());
        let forged = URL_SAFE_NO_PAD.encode(br#"{"us-east-1":{"skip":4294967295}}"#);
        assert!(decode_cursor(&forged).is_none(), "a skip no page can hold");
    }
}
