//! A small client of failoverd's own HTTP API, for the CLI's `status`, `runs`, `run`, `approve`,
//! `abort`, `report` and `drill` commands.

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a request to the API did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach failoverd at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{status} {code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("unexpected response from {url}: {message}")]
    Protocol { url: String, message: String },
}

pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    /// For event streams: no overall timeout, a read timeout above the server's keep-alive.
    streams: reqwest::Client,
}

/// The server sends a keep-alive comment every 15 s; a stream silent for this long is dead.
const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(45);

impl ApiClient {
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(unreachable(base))?;
        let streams = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(STREAM_READ_TIMEOUT)
            .build()
            .map_err(unreachable(base))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
            streams,
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let req = self.http.get(&url);
        self.send(url, req).await
    }

    /// A `GET` whose body is text in the media type `accept` (e.g. a Markdown report).
    pub async fn get_text(&self, path: &str, accept: &str) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        let req = self.http.get(&url).header(reqwest::header::ACCEPT, accept);
        let bytes = self.send_raw(&url, req).await?;
        String::from_utf8(bytes.to_vec()).map_err(|e| ClientError::Protocol {
            url,
            message: format!("the body is not UTF-8: {e}"),
        })
    }

    /// Opens the server-sent event stream at `path`, resuming after event `last_event_id` (when
    /// not 0). The response's body is the stream.
    pub async fn events(
        &self,
        path: &str,
        last_event_id: u64,
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .streams
            .get(&url)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if last_event_id > 0 {
            req = req.header("Last-Event-ID", last_event_id.to_string());
        }
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let response = req.send().await.map_err(unreachable(&url))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        Err(api_error(status, &bytes))
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        headers: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.post(&url).json(body);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        self.send(url, req).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        url: String,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let bytes = self.send_raw(&url, req).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
            url,
            message: e.to_string(),
        })
    }

    /// Sends `req` with the token; a non-2xx answer becomes [`ClientError::Api`].
    async fn send_raw(
        &self,
        url: &str,
        mut req: reqwest::RequestBuilder,
    ) -> Result<bytes::Bytes, ClientError> {
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let response = req.send().await.map_err(unreachable(url))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable(url))?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        Ok(bytes)
    }
}

/// The error of a request to `url` that got no answer.
fn unreachable(url: &str) -> impl FnOnce(reqwest::Error) -> ClientError + '_ {
    move |source| ClientError::Unreachable {
        url: url.to_owned(),
        source,
    }
}

/// A non-2xx answer: failoverd's `{"error": {"code", "message"}}`, or the body as it came.
fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(bytes).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(|e| e.get(k))
            .and_then(|c| c.as_str())
            .map(str::to_owned)
    };
    ClientError::Api {
        status,
        code: field("code").unwrap_or_else(|| "unknown".to_owned()),
        message: field("message").unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned()),
    }
}
