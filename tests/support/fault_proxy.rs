//! A fault-injecting HTTP proxy for the AWS test bed, in front of moto.
//!
//! The AWS adapters must behave well when AWS does not: retry throttling and 5xx within their
//! budget, surface non-retryable errors at once, and turn a hung endpoint into a timeout. Moto never
//! throttles or fails, so this proxy does it for them. It listens on `127.0.0.1:0`, forwards every
//! request to moto unchanged, and — following the current [`FaultPlan`] — answers some requests
//! itself instead:
//!
//! * [`Fault::Throttle`]: the service's *real* throttling error, in the service's protocol
//!   (Route 53 REST-XML `Throttling`, RDS query-XML `Throttling`, Cognito JSON
//!   `TooManyRequestsException`, CloudWatch RPC-v2-CBOR `Throttling` via `x-amzn-query-error`,
//!   Backup REST-JSON `ThrottlingException`), so the SDK's own deserializer and retry classifier
//!   see exactly what AWS would send;
//! * [`Fault::Error`]: any other service error (code and status), same encoding;
//! * [`Fault::ServerError`]: a 5xx;
//! * [`Fault::Delay`]: waits, then forwards (past the attempt timeout, this is a hang);
//! * [`Fault::Drop`]: closes the connection without answering.
//!
//! Faults apply to "the next N requests" or to a share of requests drawn from a seeded RNG, so a
//! test is deterministic. Every decision is counted ([`FaultStats`]) for assertions such as "two
//! throttles, then one forwarded request".
//!
//! **CloudWatch bridge.** The Rust SDK speaks Smithy RPC v2 CBOR to CloudWatch, which moto 5.2.5
//! does not serve (it 404s `/service/.../operation/...`), while it does serve CloudWatch's
//! `awsJson1_0` protocol. So the proxy transcodes such requests: CBOR body to JSON with
//! `X-Amz-Target`, and moto's JSON answer back to CBOR (epoch-seconds timestamps re-tagged, error
//! `__type` and `x-amzn-query-error` carried over). CloudWatch tests therefore always go through
//! a proxy; see [`rpcv2`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does to a request it does not forward untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The service's throttling error (HTTP 400 with the protocol's throttling code).
    Throttle,
    /// A service error with this code and HTTP status (e.g. `PriorRequestNotComplete`/400,
    /// `AccessDenied`/403), encoded in the service's protocol.
    Error { status: u16, code: String },
    /// A 5xx answer (500 `InternalFailure`, 503 `ServiceUnavailable`, ...).
    ServerError(u16),
    /// Wait this long, then forward.
    Delay(Duration),
    /// Close the connection without an answer.
    Drop,
}

/// Which requests get a fault.
#[derive(Debug)]
pub enum FaultPlan {
    /// Forward everything.
    None,
    /// The next `remaining` requests get `fault`, then everything is forwarded.
    Next { fault: Fault, remaining: u64 },
    /// Each request gets `fault` with probability `share`, drawn from a seeded RNG.
    Share {
        fault: Fault,
        share: f64,
        rng: StdRng,
    },
}

/// What the proxy did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests received.
    pub requests: u64,
    /// Requests forwarded to moto (delayed ones included) and answered by it.
    pub forwarded: u64,
    pub throttled: u64,
    pub errors: u64,
    pub server_errors: u64,
    pub delayed: u64,
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    forwarded: AtomicU64,
    throttled: AtomicU64,
    errors: AtomicU64,
    server_errors: AtomicU64,
    delayed: AtomicU64,
    dropped: AtomicU64,
}

struct Shared {
    upstream: SocketAddr,
    plan: Mutex<FaultPlan>,
    counters: Counters,
}

impl Shared {
    /// The fault for the next request, if any, advancing the plan.
    fn next_fault(&self) -> Option<Fault> {
        let mut plan = self.plan.lock().expect("fault plan lock poisoned");
        match &mut *plan {
            FaultPlan::None => None,
            FaultPlan::Next { fault, remaining } => {
                if *remaining == 0 {
                    return None;
                }
                *remaining -= 1;
                Some(fault.clone())
            }
            FaultPlan::Share { fault, share, rng } => {
                let draw: f64 = rng.random();
                (draw < *share).then(|| fault.clone())
            }
        }
    }
}

/// The running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy on 127.0.0.1:0");
        let addr = listener.local_addr().expect("fault proxy local address");
        let shared = Arc::new(Shared {
            upstream,
            plan: Mutex::new(FaultPlan::None),
            counters: Counters::default(),
        });
        let accept_shared = shared.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let shared = accept_shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(shared.clone(), request));
                    // A connection ends with an error when a `Drop` fault aborts it; that is the
                    // point, not a failure of the proxy.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            addr,
            shared,
            accept_task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to give the SDK as `endpoint_url`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the current plan.
    pub fn set_plan(&self, plan: FaultPlan) {
        *self.shared.plan.lock().expect("fault plan lock poisoned") = plan;
    }

    /// The next `count` requests get `fault`.
    pub fn fail_next(&self, count: u64, fault: Fault) {
        self.set_plan(FaultPlan::Next {
            fault,
            remaining: count,
        });
    }

    /// Each request gets `fault` with probability `share`, deterministically for a given `seed`.
    pub fn fail_share(&self, share: f64, fault: Fault, seed: u64) {
        self.set_plan(FaultPlan::Share {
            fault,
            share,
            rng: StdRng::seed_from_u64(seed),
        });
    }

    /// Forward everything from now on.
    pub fn clear(&self) {
        self.set_plan(FaultPlan::None);
    }

    pub fn stats(&self) -> FaultStats {
        let c = &self.shared.counters;
        FaultStats {
            requests: c.requests.load(Ordering::SeqCst),
            forwarded: c.forwarded.load(Ordering::SeqCst),
            throttled: c.throttled.load(Ordering::SeqCst),
            errors: c.errors.load(Ordering::SeqCst),
            server_errors: c.server_errors.load(Ordering::SeqCst),
            delayed: c.delayed.load(Ordering::SeqCst),
            dropped: c.dropped.load(Ordering::SeqCst),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// The error a `Drop` fault returns to hyper so it closes the connection without a response.
#[derive(Debug)]
struct DroppedOnPurpose;

impl std::fmt::Display for DroppedOnPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for DroppedOnPurpose {}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DroppedOnPurpose> {
    let counters = &shared.counters;
    counters.requests.fetch_add(1, Ordering::SeqCst);
    let protocol = Protocol::of(&request);
    match shared.next_fault() {
        None => {}
        Some(Fault::Throttle) => {
            counters.throttled.fetch_add(1, Ordering::SeqCst);
            return Ok(protocol.error_response(400, protocol.throttling_code(), "Rate exceeded"));
        }
        Some(Fault::Error { status, code }) => {
            counters.errors.fetch_add(1, Ordering::SeqCst);
            return Ok(protocol.error_response(status, &code, "injected by the fault proxy"));
        }
        Some(Fault::ServerError(status)) => {
            counters.server_errors.fetch_add(1, Ordering::SeqCst);
            let code = if status == 503 {
                "ServiceUnavailable"
            } else {
                "InternalFailure"
            };
            return Ok(protocol.error_response(status, code, "injected by the fault proxy"));
        }
        Some(Fault::Drop) => {
            counters.dropped.fetch_add(1, Ordering::SeqCst);
            return Err(DroppedOnPurpose);
        }
        Some(Fault::Delay(delay)) => {
            counters.delayed.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
        }
    }
    let response = if protocol == Protocol::RpcV2Cbor {
        rpcv2::forward_as_json(shared.upstream, request).await
    } else {
        forward(shared.upstream, request).await
    };
    counters.forwarded.fetch_add(1, Ordering::SeqCst);
    Ok(response)
}

/// Sends the request to moto on a fresh connection and buffers the answer. A failure to reach
/// moto becomes a 502, which the SDK treats like any 5xx.
async fn forward(upstream: SocketAddr, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match try_forward(upstream, request).await {
        Ok(response) => response,
        Err(message) => {
            let mut response = Response::new(Full::new(Bytes::from(message)));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}

async fn try_forward(
    upstream: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, String> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("reading the request: {e}"))?
        .to_bytes();
    send_buffered(upstream, Request::from_parts(parts, body)).await
}

/// Sends a fully buffered request to moto on a fresh connection; returns the buffered answer.
async fn send_buffered(
    upstream: SocketAddr,
    request: Request<Bytes>,
) -> Result<Response<Full<Bytes>>, String> {
    let (parts, body) = request.into_parts();
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| format!("connecting to moto: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake with moto: {e}"))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| format!("request to moto: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("reading moto's answer: {e}"))?
        .to_bytes();
    let mut response = Response::from_parts(parts, Full::new(body));
    // The body was re-framed; let hyper compute the framing headers again.
    response
        .headers_mut()
        .remove(hyper::header::TRANSFER_ENCODING);
    Ok(response)
}

/// The wire protocol of an AWS request, told apart by what each protocol must send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// Route 53.
    RestXml,
    /// RDS (and other query services).
    QueryXml,
    /// Cognito (`X-Amz-Target` + `application/x-amz-json-1.1`).
    Json,
    /// CloudWatch (`smithy-protocol: rpc-v2-cbor`).
    RpcV2Cbor,
    /// Backup.
    RestJson,
}

impl Protocol {
    fn of<B>(request: &Request<B>) -> Protocol {
        let headers = request.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        if header("smithy-protocol") == "rpc-v2-cbor" {
            Protocol::RpcV2Cbor
        } else if !header("x-amz-target").is_empty() {
            Protocol::Json
        } else if request.uri().path().starts_with("/2013-04-01/") {
            Protocol::RestXml
        } else if header("content-type").starts_with("application/x-www-form-urlencoded") {
            Protocol::QueryXml
        } else {
            Protocol::RestJson
        }
    }

    /// The code the service uses for throttling.
    fn throttling_code(self) -> &'static str {
        match self {
            Protocol::RestXml | Protocol::QueryXml | Protocol::RpcV2Cbor => "Throttling",
            Protocol::Json => "TooManyRequestsException",
            Protocol::RestJson => "ThrottlingException",
        }
    }

    fn error_response(self, status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
        let request_id = "fault-proxy-0000-0000-0000-000000000000";
        let fault_type = if status >= 500 { "Receiver" } else { "Sender" };
        let (content_type, body, extra): (&str, Vec<u8>, Vec<(&str, String)>) = match self {
            Protocol::RestXml => (
                "text/xml",
                format!(
                    "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>{fault_type}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
                )
                .into_bytes(),
                vec![],
            ),
            Protocol::QueryXml => (
                "text/xml",
                format!(
                    "<ErrorResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><Error><Type>{fault_type}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
                )
                .into_bytes(),
                vec![],
            ),
            Protocol::Json => (
                "application/x-amz-json-1.1",
                format!("{{\"__type\":\"{code}\",\"message\":\"{message}\"}}").into_bytes(),
                vec![("x-amzn-errortype", format!("{code}:"))],
            ),
            Protocol::RestJson => (
                "application/json",
                format!("{{\"__type\":\"{code}\",\"Message\":\"{message}\"}}").into_bytes(),
                vec![("x-amzn-errortype", format!("{code}:"))],
            ),
            Protocol::RpcV2Cbor => (
                "application/cbor",
                cbor_text_map(&[("__type", code), ("message", message)]),
                vec![
                    ("smithy-protocol", "rpc-v2-cbor".to_owned()),
                    // awsQueryCompatible services (CloudWatch) carry the query-era code here.
                    ("x-amzn-query-error", format!("{code};{fault_type}")),
                ],
            ),
        };
        let length = body.len();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        headers.insert(
            HeaderName::from_static("x-amzn-requestid"),
            HeaderValue::from_static(request_id),
        );
        for (name, value) in extra {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        response
    }
}

/// A CBOR map of text keys to text values (RFC 8949 major types 5 and 3), enough for an RPC v2
/// error body.
fn cbor_text_map(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    cbor_head(&mut out, 5, entries.len() as u64);
    for (key, value) in entries {
        for text in [key, value] {
            cbor_head(&mut out, 3, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        }
    }
    out
}

fn cbor_text(out: &mut Vec<u8>, text: &str) {
    cbor_head(out, 3, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn cbor_head_tag(out: &mut Vec<u8>, tag: u64) {
    cbor_head(out, 6, tag);
}

fn cbor_head(out: &mut Vec<u8>, major: u8, length: u64) {
    let major = major << 5;
    match length {
        0..=23 => out.push(major | length as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, length as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(length as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(length as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&length.to_be_bytes());
        }
    }
}

/// Smithy RPC v2 CBOR ⇄ `awsJson1_0` bridge for CloudWatch (moto only serves the JSON protocol).
pub mod rpcv2 {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
    use hyper::{Request, Response, StatusCode};
    use serde_json::{Map, Number, Value};

    /// CBOR tag for epoch-seconds timestamps (RFC 8949 §3.4.2), which RPC v2 uses for every
    /// timestamp member.
    const EPOCH_TAG: u64 = 1;

    pub async fn forward_as_json(
        upstream: SocketAddr,
        request: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        match try_forward(upstream, request).await {
            Ok(response) => response,
            Err(message) => {
                let mut response = Response::new(Full::new(Bytes::from(message)));
                *response.status_mut() = StatusCode::BAD_GATEWAY;
                response
            }
        }
    }

    async fn try_forward(
        upstream: SocketAddr,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, String> {
        let (mut parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("reading the request: {e}"))?
            .to_bytes();
        // `/service/<ServiceShape>/operation/<Operation>`
        let path = parts.uri.path().to_owned();
        let mut segments = path.trim_start_matches('/').split('/');
        let (Some("service"), Some(service), Some("operation"), Some(operation)) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(format!("not an RPC v2 path: {path}"));
        };
        let json = if body.is_empty() {
            Value::Object(Map::new())
        } else {
            let mut decoder = Decoder {
                bytes: &body,
                pos: 0,
            };
            decoder.value()?
        };
        let target = format!("{service}.{operation}");
        parts.uri = "/".parse().map_err(|e| format!("{e}"))?;
        let headers = &mut parts.headers;
        headers.remove("smithy-protocol");
        headers.remove(hyper::header::ACCEPT);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        headers.insert(
            "x-amz-target",
            HeaderValue::from_str(&target).map_err(|e| e.to_string())?,
        );
        let json_body = Bytes::from(json.to_string());
        headers.insert(CONTENT_LENGTH, HeaderValue::from(json_body.len()));
        let answer = super::send_buffered(upstream, Request::from_parts(parts, json_body)).await?;

        let (mut parts, body) = answer.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("reading moto's answer: {e}"))?
            .to_bytes();
        let value: Value = if body.is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| format!("moto's answer is not JSON ({e}): {body:?}"))?
        };
        let value = if parts.status.is_success() {
            value
        } else {
            // Keep the code without the JSON protocol's namespace, and the message.
            let code = value
                .get("__type")
                .and_then(Value::as_str)
                .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
                .unwrap_or_default();
            let message = value
                .get("message")
                .or_else(|| value.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            serde_json::json!({ "__type": code, "message": message })
        };
        let mut cbor = Vec::new();
        encode(&mut cbor, &value, false);
        let headers = &mut parts.headers;
        headers.remove("x-amzn-errortype");
        headers.remove(hyper::header::TRANSFER_ENCODING);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/cbor"));
        headers.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(cbor.len()));
        Ok(Response::from_parts(parts, Full::new(Bytes::from(cbor))))
    }

    /// Whether a JSON member holds a timestamp. JSON carries timestamps as bare epoch seconds,
    /// CBOR must tag them; CloudWatch's timestamp members are named like this.
    fn is_timestamp_member(name: &str) -> bool {
        name.ends_with("Timestamp")
            || name.ends_with("Timestamps")
            || matches!(
                name,
                "StartTime" | "EndTime" | "StartDate" | "EndDate" | "LastModified"
            )
    }

    fn encode(out: &mut Vec<u8>, value: &Value, timestamp: bool) {
        match value {
            Value::Null => out.push(0xf6),
            Value::Bool(false) => out.push(0xf4),
            Value::Bool(true) => out.push(0xf5),
            Value::Number(number) if timestamp => {
                super::cbor_head_tag(out, EPOCH_TAG);
                encode_number(out, number);
            }
            Value::Number(number) => encode_number(out, number),
            Value::String(text) if timestamp => {
                match time::OffsetDateTime::parse(
                    text,
                    &time::format_description::well_known::Rfc3339,
                ) {
                    Ok(at) => {
                        super::cbor_head_tag(out, EPOCH_TAG);
                        out.push(0xfb);
                        let seconds = at.unix_timestamp_nanos() as f64 / 1e9;
                        out.extend_from_slice(&seconds.to_be_bytes());
                    }
                    Err(_) => super::cbor_text(out, text),
                }
            }
            Value::String(text) => super::cbor_text(out, text),
            Value::Array(items) => {
                super::cbor_head(out, 4, items.len() as u64);
                for item in items {
                    encode(out, item, timestamp);
                }
            }
            Value::Object(members) => {
                super::cbor_head(out, 5, members.len() as u64);
                for (name, member) in members {
                    super::cbor_text(out, name);
                    encode(out, member, is_timestamp_member(name));
                }
            }
        }
    }

    fn encode_number(out: &mut Vec<u8>, number: &Number) {
        if let Some(unsigned) = number.as_u64() {
            super::cbor_head(out, 0, unsigned);
        } else if let Some(signed) = number.as_i64() {
            // Negative: major type 1 carries -1 - n.
            super::cbor_head(out, 1, (-1 - signed) as u64);
        } else {
            out.push(0xfb);
            out.extend_from_slice(&number.as_f64().unwrap_or(0.0).to_be_bytes());
        }
    }

    /// A small CBOR decoder: everything the SDK's RPC v2 serializer emits (definite and
    /// indefinite lengths, ints, floats, text, bytes, tags).
    struct Decoder<'a> {
        bytes: &'a [u8],
        pos: usize,
    }

    const BREAK: u8 = 0xff;

    impl Decoder<'_> {
        fn byte(&mut self) -> Result<u8, String> {
            let byte = *self.bytes.get(self.pos).ok_or("truncated CBOR")?;
            self.pos += 1;
            Ok(byte)
        }

        fn take(&mut self, n: usize) -> Result<&[u8], String> {
            let end = self.pos.checked_add(n).ok_or("CBOR length overflow")?;
            let slice = self.bytes.get(self.pos..end).ok_or("truncated CBOR")?;
            self.pos = end;
            Ok(slice)
        }

        fn peek_break(&mut self) -> Result<bool, String> {
            if *self.bytes.get(self.pos).ok_or("truncated CBOR")? == BREAK {
                self.pos += 1;
                Ok(true)
            } else {
                Ok(false)
            }
        }

        /// The argument of an initial byte; `None` for an indefinite length.
        fn argument(&mut self, info: u8) -> Result<Option<u64>, String> {
            Ok(Some(match info {
                0..=23 => u64::from(info),
                24 => u64::from(self.byte()?),
                25 => u64::from(u16::from_be_bytes(
                    self.take(2)?.try_into().map_err(|_| "len")?,
                )),
                26 => u64::from(u32::from_be_bytes(
                    self.take(4)?.try_into().map_err(|_| "len")?,
                )),
                27 => u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| "len")?),
                31 => return Ok(None),
                other => return Err(format!("bad CBOR additional info {other}")),
            }))
        }

        fn text(&mut self, info: u8, major: u8) -> Result<Vec<u8>, String> {
            match self.argument(info)? {
                Some(len) => Ok(self.take(len as usize)?.to_vec()),
                None => {
                    let mut out = Vec::new();
                    while !self.peek_break()? {
                        let initial = self.byte()?;
                        if initial >> 5 != major {
                            return Err("mixed chunk types in CBOR string".into());
                        }
                        out.extend(self.text(initial & 0x1f, major)?);
                    }
                    Ok(out)
                }
            }
        }

        fn value(&mut self) -> Result<Value, String> {
            let initial = self.byte()?;
            let (major, info) = (initial >> 5, initial & 0x1f);
            match major {
                0 => Ok(Value::from(self.argument(info)?.ok_or("indefinite int")?)),
                1 => {
                    let n = self.argument(info)?.ok_or("indefinite int")?;
                    Ok(Value::from(-1 - n as i64))
                }
                2 => {
                    let bytes = self.text(info, 2)?;
                    Ok(Value::String(aws_smithy_types::base64::encode(bytes)))
                }
                3 => String::from_utf8(self.text(info, 3)?)
                    .map(Value::String)
                    .map_err(|e| e.to_string()),
                4 => {
                    let mut items = Vec::new();
                    match self.argument(info)? {
                        Some(len) => {
                            for _ in 0..len {
                                items.push(self.value()?);
                            }
                        }
                        None => {
                            while !self.peek_break()? {
                                items.push(self.value()?);
                            }
                        }
                    }
                    Ok(Value::Array(items))
                }
                5 => {
                    let mut members = Map::new();
                    let mut entry = |d: &mut Self| -> Result<(), String> {
                        let key = match d.value()? {
                            Value::String(key) => key,
                            other => return Err(format!("non-text CBOR map key {other}")),
                        };
                        let value = d.value()?;
                        members.insert(key, value);
                        Ok(())
                    };
                    match self.argument(info)? {
                        Some(len) => {
                            for _ in 0..len {
                                entry(self)?;
                            }
                        }
                        None => {
                            while !self.peek_break()? {
                                entry(self)?;
                            }
                        }
                    }
                    Ok(Value::Object(members))
                }
                // Tags: timestamps (1) become bare epoch seconds, as JSON carries them.
                6 => {
                    self.argument(info)?;
                    self.value()
                }
                7 => match info {
                    20 => Ok(Value::Bool(false)),
                    21 => Ok(Value::Bool(true)),
                    22 | 23 => Ok(Value::Null),
                    25 => {
                        let half = u16::from_be_bytes(self.take(2)?.try_into().map_err(|_| "f16")?);
                        Ok(float(f16_to_f64(half)))
                    }
                    26 => {
                        let single =
                            f32::from_be_bytes(self.take(4)?.try_into().map_err(|_| "f32")?);
                        Ok(float(f64::from(single)))
                    }
                    27 => {
                        let double =
                            f64::from_be_bytes(self.take(8)?.try_into().map_err(|_| "f64")?);
                        Ok(float(double))
                    }
                    other => Err(format!("unsupported CBOR simple value {other}")),
                },
                _ => Err(format!("bad CBOR major type {major}")),
            }
        }
    }

    fn float(value: f64) -> Value {
        Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }

    fn f16_to_f64(half: u16) -> f64 {
        let exponent = (half >> 10) & 0x1f;
        let mantissa = f64::from(half & 0x3ff);
        let magnitude = match exponent {
            0 => mantissa * 2f64.powi(-24),
            31 if mantissa == 0.0 => f64::INFINITY,
            31 => f64::NAN,
            e => (1.0 + mantissa / 1024.0) * 2f64.powi(i32::from(e) - 15),
        };
        if half & 0x8000 != 0 {
            -magnitude
        } else {
            magnitude
        }
    }
}
