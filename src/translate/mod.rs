//! Pure translation between the OpenAI API and Bedrock.
