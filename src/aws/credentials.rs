//! Where a target's AWS credentials come from. Fetching is done by the target's actor in the
//! background; the request path only reads the last credentials it published.

use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_types::region::Region;

use crate::config::{AssumeRole, AwsKeys, Target, TargetAuth};

/// Refresh this long before credentials expire, so a request never meets expired ones.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Credentials without an expiry (a long-lived profile) are re-read this often anyway, so a
/// rotated key is picked up.
const REFRESH_WITHOUT_EXPIRY: Duration = Duration::from_secs(15 * 60);
/// Shortest gap between refreshes, so a provider handing out nearly-expired keys is not hammered.
const MIN_REFRESH: Duration = Duration::from_secs(10);

/// What a SigV4-signed target's credentials come from: its region, static keys and role.
#[derive(Debug, Clone)]
pub struct SigV4Credentials {
    region: String,
    keys: Option<AwsKeys>,
    assume_role: Option<AssumeRole>,
}

impl SigV4Credentials {
    /// `None` for a target that is not SigV4-signed (its own key, or none), which never loads
    /// AWS credentials.
    pub fn of(target: &Target) -> Option<Self> {
        match &target.auth {
            TargetAuth::SigV4 { keys, assume_role } => Some(Self {
                region: target.region.clone(),
                keys: keys.clone(),
                assume_role: assume_role.clone(),
            }),
            TargetAuth::Key(_) | TargetAuth::None => None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum CredentialSource {
    Static(Credentials),
    Provider(SharedCredentialsProvider),
}

impl CredentialSource {
    /// Builds the source for a SigV4 target: its static keys, else the standard AWS
    /// chain (env, profile, web identity / IRSA, ECS, IMDSv2), optionally wrapped in an STS
    /// assume-role.
    pub async fn for_target(target: &SigV4Credentials) -> Self {
        if let Some(keys) = &target.keys {
            return Self::Static(Credentials::new(
                keys.access_key_id.clone(),
                keys.secret_access_key.clone(),
                keys.session_token.clone(),
                None,
                "bedrock-balancer-static",
            ));
        }
        let region = Region::new(target.region.clone());
        let chain = DefaultCredentialsChain::builder()
            .region(region.clone())
            .build()
            .await;
        let base = SharedCredentialsProvider::new(chain);
        match &target.assume_role {
            None => Self::Provider(base),
            Some(role) => {
                // A full SDK config (time source, sleep, HTTP client), not a bare builder: the
                // STS client panics without a time source.
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(region.clone())
                    .credentials_provider(base.clone());
                if let Some(endpoint) = &role.sts_endpoint_url {
                    loader = loader.endpoint_url(endpoint.clone());
                }
                let sts_config = loader.load().await;
                let provider = AssumeRoleProvider::builder(role.role_arn.clone())
                    .session_name(role.session_name.clone())
                    .region(region)
                    .configure(&sts_config)
                    .build_from_provider(base)
                    .await;
                Self::Provider(SharedCredentialsProvider::new(provider))
            }
        }
    }

    pub async fn fetch(&self) -> Result<Credentials, String> {
        match self {
            Self::Static(credentials) => Ok(credentials.clone()),
            Self::Provider(provider) => provider
                .provide_credentials()
                .await
                .map_err(|e| e.to_string()),
        }
    }

    pub const fn is_static(&self) -> bool {
        matches!(self, Self::Static(_))
    }
}

/// How long to wait before fetching again.
pub fn refresh_after(credentials: &Credentials, now: SystemTime) -> Duration {
    match credentials.expiry() {
        None => REFRESH_WITHOUT_EXPIRY,
        Some(expiry) => expiry
            .duration_since(now)
            .unwrap_or_default()
            .saturating_sub(REFRESH_BEFORE_EXPIRY)
            .max(MIN_REFRESH),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_five_minutes_before_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let creds = Credentials::new("a", "b", None, Some(now + Duration::from_secs(3600)), "t");
        assert_eq!(refresh_after(&creds, now), Duration::from_secs(3300));
        let soon = Credentials::new("a", "b", None, Some(now + Duration::from_secs(60)), "t");
        assert_eq!(refresh_after(&soon, now), MIN_REFRESH);
        let forever = Credentials::new("a", "b", None, None, "t");
        assert_eq!(refresh_after(&forever, now), REFRESH_WITHOUT_EXPIRY);
    }

    /// An unreachable STS is an error the actor retries, never a panic taking the gateway down.
    #[actix_rt::test]
    #[allow(clippy::unwrap_used)]
    async fn assume_role_against_an_unreachable_sts_fails_cleanly() {
        let yaml = r#"
routes:
  - name: r
    targets:
      - model:
          provider: bedrock
          name: m
          options:
            bedrock:
              aws_region: us-east-1
              aws_assume_role_arn: arn:aws:iam::123456789012:role/bedrock-invoke
              aws_sts_endpoint_url: http://127.0.0.1:9
"#;
        let config = crate::config::parse(yaml, &|_| None).unwrap();
        let target = SigV4Credentials::of(&config.routes[0].targets[0]).unwrap();
        let source = CredentialSource::for_target(&target).await;
        assert!(!source.is_static());
        assert!(source.fetch().await.is_err());
    }
}
