//! The embedding model families the gateway can drive, known from a target's model id: the
//! config refuses an embeddings route that mixes them, and translation builds each one's bodies.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingFamily {
    TitanV1,
    TitanV2,
    Cohere,
}

impl EmbeddingFamily {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TitanV1 => "Titan v1",
            Self::TitanV2 => "Titan v2",
            Self::Cohere => "Cohere",
        }
    }

    /// Detects the family from a Bedrock model id, inference-profile id (`us.cohere.embed-v4:0`)
    /// or ARN; `None` for models the gateway cannot drive.
    pub fn from_model_id(model_id: &str) -> Option<Self> {
        let id = model_id.rsplit('/').next().unwrap_or(model_id);
        if id.contains("amazon.titan-embed-text-v2") {
            Some(Self::TitanV2)
        } else if id.contains("amazon.titan-embed-text-v1")
            || id.contains("amazon.titan-embed-g1-text")
        {
            Some(Self::TitanV1)
        } else if id.contains("cohere.embed-") {
            Some(Self::Cohere)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_detection() {
        use EmbeddingFamily::*;
        for (id, want) in [
            ("amazon.titan-embed-text-v1", Some(TitanV1)),
            ("amazon.titan-embed-g1-text-02", Some(TitanV1)),
            ("amazon.titan-embed-text-v2:0", Some(TitanV2)),
            ("cohere.embed-english-v3", Some(Cohere)),
            ("cohere.embed-multilingual-v3", Some(Cohere)),
            ("us.cohere.embed-v4:0", Some(Cohere)),
            (
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
                Some(TitanV2),
            ),
            ("amazon.titan-embed-image-v1", None),
            ("anthropic.claude-3-haiku", None),
        ] {
            assert_eq!(EmbeddingFamily::from_model_id(id), want, "{id}");
        }
    }
}
