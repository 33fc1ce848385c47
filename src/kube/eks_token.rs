//! The bearer token of an EKS cluster, made here instead of by `aws eks get-token` (the image has
//! no `aws` CLI, and an exec plugin would be one more thing to fail during an outage).
//!
//! The token is `k8s-aws-v1.` followed by the unpadded base64url encoding of a presigned STS
//! `GetCallerIdentity` URL whose signature covers the `x-k8s-aws-id` header, set to the cluster
//! name. EKS (aws-iam-authenticator) calls the URL to learn who we are, and refuses a token
//! signed for another cluster. The URL is presigned for 60 s (as the CLI does); EKS accepts the
//! token for 15 minutes after its signing time, so failoverd makes a new one well before that
//! ([`REFRESH_AFTER`]).

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_types::sdk_config::SharedCredentialsProvider;
use base64::Engine;

/// The prefix of every EKS token.
pub const PREFIX: &str = "k8s-aws-v1.";
/// The header that binds the token to a cluster.
pub const CLUSTER_HEADER: &str = "x-k8s-aws-id";
/// How long the presigned URL itself is valid (`X-Amz-Expires`), as `aws eks get-token` sets it.
pub const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);
/// EKS accepts a token this long after it was signed.
pub const ACCEPTED_FOR: Duration = Duration::from_secs(15 * 60);
/// A new token is made after this long (well inside [`ACCEPTED_FOR`]).
pub const REFRESH_AFTER: Duration = Duration::from_secs(10 * 60);

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no AWS credentials for the EKS token: {0}")]
    Credentials(String),
    #[error("cannot sign the EKS token: {0}")]
    Sign(String),
}

/// The STS endpoint of `region` (the regional endpoint: it keeps working when another region's
/// STS, or the global endpoint in us-east-1, is impaired).
pub fn sts_url(region: &str) -> String {
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://sts.{region}.{domain}/?Action=GetCallerIdentity&Version=2011-06-15")
}

/// A token for `cluster_name`, signed now with credentials from `credentials`, for STS in
/// `region`.
pub async fn token(
    credentials: &SharedCredentialsProvider,
    region: &str,
    cluster_name: &str,
) -> Result<String, TokenError> {
    let creds = credentials
        .provide_credentials()
        .await
        .map_err(|e| TokenError::Credentials(crate::error_chain::error_chain(&e)))?;
    presign(creds, region, cluster_name, SystemTime::now())
}

/// [`token`] with given credentials and signing time (deterministic, for tests).
pub fn presign(
    creds: aws_credential_types::Credentials,
    region: &str,
    cluster_name: &str,
    at: SystemTime,
) -> Result<String, TokenError> {
    let identity = creds.into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| TokenError::Sign(e.to_string()))?
        .into();
    let url = sts_url(region);
    let host = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let headers = [("host", host.as_str()), (CLUSTER_HEADER, cluster_name)];
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| TokenError::Sign(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| TokenError::Sign(e.to_string()))?
        .into_parts();
    let mut request = http::Request::builder()
        .method("GET")
        .uri(url.as_str())
        .body(())
        .map_err(|e| TokenError::Sign(e.to_string()))?;
    instructions.apply_to_request_http1x(&mut request);
    let presigned = request.uri().to_string();
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(token: &str) -> String {
        let body = token.strip_prefix(PREFIX).expect("prefix");
        assert!(!body.contains('='), "unpadded");
        String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .expect("base64url"),
        )
        .expect("utf-8")
    }

    fn query(url: &str) -> std::collections::BTreeMap<String, String> {
        let q = url.split_once('?').expect("query").1;
        q.split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("k=v");
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    #[test]
    fn the_token_is_a_presigned_get_caller_identity_bound_to_the_cluster() {
        let creds =
            aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_669_600); // 2025-12-02T10:00:00Z
        let token = presign(creds, "us-west-2", "shop-usw2", at).expect("token");
        let url = decode(&token);
        assert!(
            url.starts_with("https://sts.us-west-2.amazonaws.com/?"),
            "{url}"
        );
        let q = query(&url);
        assert_eq!(q["Action"], "GetCallerIdentity");
        assert_eq!(q["Version"], "2011-06-15");
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            q["X-Amz-Credential"],
            "AKIDEXAMPLE%2F20251202%2Fus-west-2%2Fsts%2Faws4_request"
        );
        assert_eq!(q["X-Amz-Date"], "20251202T100000Z");
        assert_eq!(q["X-Amz-Expires"], "60");
        assert_eq!(q["X-Amz-SignedHeaders"], "host%3Bx-k8s-aws-id");
        let sig = &q["X-Amz-Signature"];
        assert_eq!(sig.len(), 64);
        assert!(sig.chars().all(|c| c.is_ascii_hexdigit()));
        // Another cluster name signs differently: the token is bound to its cluster.
        let creds =
            aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let other = presign(creds, "us-west-2", "other", at).expect("token");
        assert_ne!(query(&decode(&other))["X-Amz-Signature"], *sig);
    }

    #[test]
    fn a_session_token_is_carried() {
        let creds = aws_credential_types::Credentials::new(
            "ASIAEXAMPLE",
            "secret",
            Some("session".into()),
            None,
            "test",
        );
        let token = presign(creds, "eu-west-1", "c", SystemTime::now()).expect("token");
        assert_eq!(query(&decode(&token))["X-Amz-Security-Token"], "session");
    }

    #[test]
    fn refresh_comes_well_before_expiry() {
        assert!(REFRESH_AFTER + Duration::from_secs(60) < ACCEPTED_FOR);
    }
}
