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
//! * [`Fault::Drop`]: closes the connection without answering — what a refused or reset
//!   connection looks like to a client once its request is sent (a per-region refusal at connect
//!   time is impossible here: the region is only known from the request's signature);
//! * [`Fault::Blackhole`]: accepts the request and never answers (the proxy holds it until the
//!   client gives up or the proxy is dropped) — what a lost region's endpoints usually do.
//!
//! Faults apply to "the next N requests", for a time window ([`FaultPlan::Window`]: an error
//! burst or an outage of two minutes, then everything forwarded again), to a share of requests drawn from a seeded RNG, or to
//! every request in turn from a fixed list ([`FaultPlan::Rotate`]), so a test is deterministic.
//! Every decision is counted ([`FaultStats`]) for assertions such as "two throttles, then one
//! forwarded request".
//!
//! **Scopes: one region's (or one operation's) outage.** [`FaultPlan::Scoped`] applies its inner
//! plan only to the requests a [`Scope`] matches and forwards every other request untouched,
//! without advancing the inner plan — so "the next 2 requests" means the next 2 *matching*
//! requests, whatever else the daemon sends meanwhile. A scope matches on what every AWS request
//! carries:
//!
//! * the **region** and **service** of the SigV4 credential scope in the `Authorization` header
//!   (`Credential=AKID/20261128/us-east-1/rds/aws4_request`), i.e. the region the client was built
//!   for. Global services sign for one region (Route 53: `us-east-1`), so "us-east-1 is lost"
//!   usually wants [`Scope::except_service`]`("route53")` as well — which is a choice the test
//!   makes explicitly, not something the proxy guesses;
//! * the **action**: query protocols' `Action=` form field (RDS), the JSON protocol's
//!   `X-Amz-Target` operation (Cognito), the RPC v2 CBOR path's `/operation/<Name>` (CloudWatch),
//!   and for Route 53 (REST) the operation its method and path stand for
//!   (`ChangeResourceRecordSets`, `GetChange`, `ListResourceRecordSets`, `GetHealthCheckStatus`).
//!   Backup's REST operations carry no name the proxy derives, and never match an action scope.
//!
//! The proxy also remembers what it forwarded to moto ([`FaultProxy::forwarded_matching`]), so a
//! test can count side effects that reached the emulator — "exactly one
//! `SwitchoverGlobalCluster`", "three `ChangeResourceRecordSets`" — across daemon restarts.
//!
//! To match on the action the proxy buffers the request body first (every request, scoped or not:
//! AWS request bodies are small, and one code path keeps the forwarding identical).
//!
//! Requests are forwarded unchanged, whatever the protocol: CloudWatch's Smithy RPC v2 CBOR is
//! served by failoverd's moto extension (`tests/support/failoverd_moto/cloudwatch.py`).

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
    /// Never answer: hold the request until the client gives up (or the proxy is dropped; at
    /// most [`BLACKHOLE_LIMIT`], so no test leaves a connection behind for ever).
    Blackhole,
}

/// The longest a [`Fault::Blackhole`] holds a request.
pub const BLACKHOLE_LIMIT: Duration = Duration::from_secs(600);

/// Which requests get a fault.
#[derive(Debug)]
pub enum FaultPlan {
    /// Each request gets the next fault of `faults`, round-robin from `next` (deterministic
    /// mixes such as "dropped, then timed out, then 503" for an outage).
    Rotate { faults: Vec<Fault>, next: usize },
    /// `plan` for the requests `scope` matches; every other request is forwarded and does not
    /// advance `plan`.
    Scoped { scope: Scope, plan: Box<FaultPlan> },
    /// The first of these plans that has a fault for the request gives it (the plans after it
    /// are not asked, so not advanced): several scoped plans at once, the most specific first.
    FirstOf(Vec<FaultPlan>),
    /// `plan` until `until`, then forward everything (a burst or an outage with an end).
    Window {
        until: std::time::Instant,
        plan: Box<FaultPlan>,
    },
    /// Every request gets `fault` (a region blackholed, an API refusing).
    Always(Fault),
    /// Forward everything.
    None,
    /// The next `remaining` requests get `fault`, then everything is forwarded.
    Next { fault: Fault, remaining: u64 },
    /// Each request gets `fault` with probability `share`, drawn from a seeded RNG.
    Share {
        fault: Fault,
        share: f64,
        rng: Box<StdRng>,
    },
}

/// Which requests a [`FaultPlan::Scoped`] applies to: every field that is set must match
/// (case-insensitively).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// The SigV4 credential scope's region.
    pub region: Option<String>,
    /// The SigV4 credential scope's service (`rds`, `route53`, `cognito-idp`, `monitoring`...).
    pub service: Option<String>,
    /// Services that never match (a global service signing for the region, such as `route53`).
    pub except_services: Vec<String>,
    /// The operation name (`FailoverGlobalCluster`, `ListUsers`...).
    pub action: Option<String>,
}

impl Scope {
    /// Requests signed for `region`.
    pub fn region(region: &str) -> Scope {
        Scope {
            region: Some(region.to_owned()),
            ..Scope::default()
        }
    }

    /// Requests for the operation `action` (see the module doc for which protocols carry it).
    pub fn action(action: &str) -> Scope {
        Scope {
            action: Some(action.to_owned()),
            ..Scope::default()
        }
    }

    /// Requests of `service` only.
    pub fn service(mut self, service: &str) -> Scope {
        self.service = Some(service.to_owned());
        self
    }

    /// Leaves out the requests of `service`.
    pub fn except_service(mut self, service: &str) -> Scope {
        self.except_services.push(service.to_owned());
        self
    }

    fn matches(&self, request: &RequestFacts) -> bool {
        let same = |want: &Option<String>, got: &Option<String>| match want {
            None => true,
            Some(w) => got.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(w)),
        };
        let excluded = request.service.as_deref().is_some_and(|s| {
            self.except_services
                .iter()
                .any(|e| e.eq_ignore_ascii_case(s))
        });
        !excluded
            && same(&self.region, &request.region)
            && same(&self.service, &request.service)
            && same(&self.action, &request.action)
    }
}

/// What a scope looks at in one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RequestFacts {
    region: Option<String>,
    service: Option<String>,
    action: Option<String>,
}

impl RequestFacts {
    fn of(parts: &hyper::http::request::Parts, body: &[u8], protocol: Protocol) -> RequestFacts {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        // `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=...`
        let scope: Vec<&str> = header("authorization")
            .split("Credential=")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .map(|credential| credential.split('/').collect())
            .unwrap_or_default();
        let action = match protocol {
            Protocol::QueryXml => std::str::from_utf8(body).ok().and_then(|form| {
                form.split('&')
                    .find_map(|pair| pair.strip_prefix("Action="))
                    .map(str::to_owned)
            }),
            Protocol::Json => header("x-amz-target")
                .rsplit('.')
                .next()
                .filter(|a| !a.is_empty())
                .map(str::to_owned),
            Protocol::RpcV2Cbor => parts
                .uri
                .path()
                .split("/operation/")
                .nth(1)
                .map(|a| a.trim_end_matches('/').to_owned()),
            Protocol::RestXml => route53_operation(parts.method.as_str(), parts.uri.path()),
            Protocol::RestJson => None,
        };
        RequestFacts {
            region: scope.get(2).map(|s| (*s).to_owned()),
            service: scope.get(3).map(|s| (*s).to_owned()),
            action,
        }
    }
}

/// The Route 53 operation a REST request stands for (the few failoverd uses, by method and path).
fn route53_operation(method: &str, path: &str) -> Option<String> {
    let path = path.trim_end_matches('/');
    let op = match method {
        "POST" if path.ends_with("/rrset") => "ChangeResourceRecordSets",
        "GET" if path.ends_with("/rrset") => "ListResourceRecordSets",
        "GET" if path.contains("/change/") => "GetChange",
        "GET" if path.ends_with("/status") && path.contains("/healthcheck/") => {
            "GetHealthCheckStatus"
        }
        _ => return None,
    };
    Some(op.to_owned())
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
    pub blackholed: u64,
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
    blackholed: AtomicU64,
}

struct Shared {
    upstream: SocketAddr,
    plan: Mutex<FaultPlan>,
    counters: Counters,
    /// Every request forwarded to moto (and answered by it), in order.
    forwarded: Mutex<Vec<RequestFacts>>,
    /// Set when the proxy is dropped: blackholed requests are let go.
    closed: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    /// The fault for `request`, if any, advancing the plan.
    fn next_fault(&self, request: &RequestFacts) -> Option<Fault> {
        let mut plan = self.plan.lock().expect("fault plan lock poisoned");
        plan.next_fault(request)
    }
}

impl FaultPlan {
    fn next_fault(&mut self, request: &RequestFacts) -> Option<Fault> {
        match self {
            FaultPlan::None => None,
            FaultPlan::Rotate { faults, next } => {
                if faults.is_empty() {
                    return None;
                }
                let fault = faults[*next % faults.len()].clone();
                *next = (*next + 1) % faults.len();
                Some(fault)
            }
            FaultPlan::FirstOf(plans) => plans.iter_mut().find_map(|p| p.next_fault(request)),
            FaultPlan::Window { until, plan } => {
                if std::time::Instant::now() < *until {
                    plan.next_fault(request)
                } else {
                    None
                }
            }
            FaultPlan::Always(fault) => Some(fault.clone()),
            FaultPlan::Scoped { scope, plan } => {
                if scope.matches(request) {
                    plan.next_fault(request)
                } else {
                    None
                }
            }
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
            forwarded: Mutex::new(Vec::new()),
            closed: tokio::sync::watch::Sender::new(false),
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
            rng: Box::new(StdRng::seed_from_u64(seed)),
        });
    }

    /// `plan` for the requests `scope` matches only.
    pub fn fail_scoped(&self, scope: Scope, plan: FaultPlan) {
        self.set_plan(FaultPlan::Scoped {
            scope,
            plan: Box::new(plan),
        });
    }

    /// `plan` for the requests `scope` matches, for `duration` from now; then everything is
    /// forwarded again.
    pub fn fail_scoped_for(&self, scope: Scope, duration: Duration, plan: FaultPlan) {
        self.fail_scoped(
            scope,
            FaultPlan::Window {
                until: std::time::Instant::now() + duration,
                plan: Box::new(plan),
            },
        );
    }

    /// Forward everything from now on.
    pub fn clear(&self) {
        self.set_plan(FaultPlan::None);
    }

    /// How many requests `scope` matches among those forwarded to moto so far (the side effects
    /// that reached the emulator).
    pub fn forwarded_matching(&self, scope: &Scope) -> usize {
        self.shared
            .forwarded
            .lock()
            .expect("forwarded log lock poisoned")
            .iter()
            .filter(|r| scope.matches(r))
            .count()
    }

    /// The request log: `service:Action` of every request forwarded to moto so far, in order
    /// (`?` for a part the proxy could not tell).
    pub fn forwarded_actions(&self) -> Vec<String> {
        self.shared
            .forwarded
            .lock()
            .expect("forwarded log lock poisoned")
            .iter()
            .map(|r| {
                format!(
                    "{}:{}",
                    r.service.as_deref().unwrap_or("?"),
                    r.action.as_deref().unwrap_or("?")
                )
            })
            .collect()
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
            blackholed: c.blackholed.load(Ordering::SeqCst),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.shared.closed.send_replace(true);
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
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        // The client went away mid-request: nothing to answer.
        Err(_) => return Err(DroppedOnPurpose),
    };
    let facts = RequestFacts::of(&parts, &body, protocol);
    match shared.next_fault(&facts) {
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
        Some(Fault::Blackhole) => {
            counters.blackholed.fetch_add(1, Ordering::SeqCst);
            let mut closed = shared.closed.subscribe();
            let _ = tokio::time::timeout(BLACKHOLE_LIMIT, closed.wait_for(|c| *c)).await;
            return Err(DroppedOnPurpose);
        }
        Some(Fault::Delay(delay)) => {
            counters.delayed.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
        }
    }
    let response = forward(shared.upstream, Request::from_parts(parts, body)).await;
    counters.forwarded.fetch_add(1, Ordering::SeqCst);
    shared
        .forwarded
        .lock()
        .expect("forwarded log lock poisoned")
        .push(facts);
    Ok(response)
}

/// Sends the request to moto on a fresh connection and buffers the answer. A failure to reach
/// moto becomes a 502, which the SDK treats like any 5xx.
async fn forward(upstream: SocketAddr, request: Request<Bytes>) -> Response<Full<Bytes>> {
    match send_buffered(upstream, request).await {
        Ok(response) => response,
        Err(message) => {
            let mut response = Response::new(Full::new(Bytes::from(message)));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
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
