//! The HTTP(S) probe: one request on a fresh connection, no redirects followed, the status in
//! the expected range and, optionally, a substring in the first [`MAX_BODY_BYTES`] of the body.

use std::ops::RangeInclusive;

use super::{error_chain, ProbeError, ProbeOutcome};

/// How much of a response body is searched for `body_contains`: health endpoints answer in a few
/// hundred bytes, and a probe must not download an arbitrary page every few seconds.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub(super) async fn check_http(
    client: &reqwest::Client,
    url: &reqwest::Url,
    method: &reqwest::Method,
    expect: &RangeInclusive<u16>,
    body_contains: Option<&str>,
) -> Result<ProbeOutcome, ProbeError> {
    let mut response = client
        .request(method.clone(), url.clone())
        .send()
        .await
        .map_err(|e| ProbeError::Request(error_chain(&e)))?;
    let status = response.status().as_u16();
    if !expect.contains(&status) {
        return Err(ProbeError::Status {
            status,
            lo: *expect.start(),
            hi: *expect.end(),
        });
    }
    let Some(needle) = body_contains else {
        return Ok(ProbeOutcome::Pass);
    };
    let needle_bytes = needle.as_bytes();
    let mut body: Vec<u8> = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| ProbeError::Body(error_chain(&e)))?;
        let Some(chunk) = chunk else { break };
        // Search only where a match can newly appear: the tail of what was read plus the chunk.
        let from = body
            .len()
            .saturating_sub(needle_bytes.len().saturating_sub(1));
        let take = chunk.len().min(MAX_BODY_BYTES - body.len());
        body.extend_from_slice(&chunk[..take]);
        if contains(&body[from..], needle_bytes) {
            return Ok(ProbeOutcome::Pass);
        }
    }
    Err(ProbeError::BodyMismatch {
        needle: needle.to_owned(),
        searched: body.len(),
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substring_search_handles_edges() {
        assert!(contains(b"status: ok", b"ok"));
        assert!(!contains(b"o", b"ok"));
        assert!(contains(b"anything", b""));
    }
}
