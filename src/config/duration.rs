//! Durations as config values: Kong writes timeouts as integer milliseconds (`60000`); people
//! prefer `"60s"`. Both are accepted; anything else is an error naming the value.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A duration as written, before checking. Deserializing never fails on a scalar, so a bad
/// timeout is reported with the other problems instead of hiding its neighbours.
#[derive(Debug, Clone, PartialEq)]
pub enum RawDuration {
    Millis(i128),
    Float(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawDurationVisitor;

        impl Visitor<'_> for RawDurationVisitor {
            type Value = RawDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("milliseconds or a string like \"60s\"")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration::Millis(v.into()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration::Millis(v.into()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDuration, E> {
                Ok(RawDuration::Float(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_owned()))
            }
        }

        deserializer.deserialize_any(RawDurationVisitor)
    }
}

const EXPECTED: &str =
    "expected milliseconds (60000) or a number with a unit: \"500ms\", \"60s\", \"2m\", \"1h\"";

impl RawDuration {
    /// The duration, or a message saying what is wrong with it.
    pub fn to_duration(&self) -> Result<Duration, String> {
        match self {
            Self::Millis(ms) if *ms < 0 => Err(format!("must not be negative, got {ms}")),
            Self::Millis(ms) => u64::try_from(*ms)
                .map(Duration::from_millis)
                .map_err(|_| format!("too large, got {ms}")),
            Self::Float(v) if *v < 0.0 => Err(format!("must not be negative, got {v}")),
            Self::Float(v) => Err(format!("invalid duration {v}; {EXPECTED}")),
            Self::Text(text) => parse(text.trim()).ok_or_else(|| {
                if text.trim_start().starts_with('-') {
                    format!("must not be negative, got {text:?}")
                } else {
                    format!("invalid duration {text:?}; {EXPECTED}")
                }
            }),
        }
    }
}

/// `"1h"`, `"2m"`, `"60s"`, `"500ms"`, compounds such as `"1m30s"`, or bare digits as milliseconds.
fn parse(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().map(Duration::from_millis);
    }
    let mut rest = text;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(Duration::from_millis(number.checked_mul(millis_per_unit)?))?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn text(s: &str) -> Result<Duration, String> {
        RawDuration::Text(s.to_owned()).to_duration()
    }

    #[test]
    fn accepts_units_and_milliseconds() {
        assert_eq!(text("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(text("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(text("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(text("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(text("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(text(" 250 "), Ok(Duration::from_millis(250)));
        assert_eq!(
            RawDuration::Millis(60_000).to_duration(),
            Ok(Duration::from_secs(60))
        );
        assert_eq!(RawDuration::Millis(0).to_duration(), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_junk_and_negatives() {
        assert_eq!(
            RawDuration::Millis(-5).to_duration(),
            Err("must not be negative, got -5".into())
        );
        assert_eq!(text("-5s"), Err("must not be negative, got \"-5s\"".into()));
        assert_eq!(
            RawDuration::Float(1.5).to_duration(),
            Err(format!("invalid duration 1.5; {EXPECTED}"))
        );
        for junk in [
            "",
            "s",
            "fast",
            "5 s",
            "5sec",
            "1.5s",
            "5d",
            "10s5",
            "99999999999999999999h",
        ] {
            assert!(text(junk).is_err(), "{junk:?} should be rejected");
        }
    }

    #[test]
    fn deserializes_integers_and_strings() {
        let v: Vec<RawDuration> = serde_yaml_ng::from_str("[60000, \"60s\", -1, 2.5]").unwrap();
        assert_eq!(
            v,
            vec![
                RawDuration::Millis(60_000),
                RawDuration::Text("60s".into()),
                RawDuration::Millis(-1),
                RawDuration::Float(2.5),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn millis_round_trip(ms in 0u64..10_000_000_000) {
            proptest::prop_assert_eq!(text(&format!("{ms}ms")), Ok(Duration::from_millis(ms)));
            proptest::prop_assert_eq!(text(&ms.to_string()), Ok(Duration::from_millis(ms)));
        }
    }
}
