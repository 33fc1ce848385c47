//! TLS verification of the HTTP probe: on by default, and `tls_verify: false` for endpoints with
//! a private or self-signed certificate. The server here is a real HTTPS endpoint on
//! `127.0.0.1:0` presenting a self-signed certificate (for `127.0.0.1` and `localhost`, valid for a
//! century, generated once with `openssl req -x509 -newkey ec`; its key protects nothing).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use failoverd::config::{HealthConfig, ProbeConfig};
use failoverd::health::{HealthMonitor, HealthPorts, ProbeState, ProbeStatus};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

const DEADLINE: Duration = Duration::from_secs(60);

const SELF_SIGNED_CERT: &str = r"-----BEGIN CERTIFICATE-----
MIIBvTCCAWOgAwIBAgIULewQmlCRQb4A+Vybht80YVk0xT4wCgYIKoZIzj0EAwIw
JTEjMCEGA1UEAwwaZmFpbG92ZXJkLXRlc3Qtc2VsZi1zaWduZWQwIBcNMjYxMTI4
MTQ0NTIxWhgPMjEyNjExMDQxNDQ1MjFaMCUxIzAhBgNVBAMMGmZhaWxvdmVyZC10
ZXN0LXNlbGYtc2lnbmVkMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAC4WXXfi
W50c6Cxev6EVphuksyPd6mstTvr2vrocWFMbgxYHbuKWZR3BXziAfFOlQOzTCkCw
7DOoK5sz1rJxyqNvMG0wHQYDVR0OBBYEFKMf8w3g/TZYPmjECnOQ3XnlTjclMB8G
A1UdIwQYMBaAFKMf8w3g/TZYPmjECnOQ3XnlTjclMA8GA1UdEwEB/wQFMAMBAf8w
GgYDVR0RBBMwEYcEfwAAAYIJbG9jYWxob3N0MAoGCCqGSM49BAMCA0gAMEUCICGi
8q1WVgDIPfBuu0Pueu0Fawk9Apb31N921poBbBIKAiEAhUvgKzPDashazH6b3yOM
JVFO4TyaCf52amGAEj0y9vk=
-----END CERTIFICATE-----
";

const SELF_SIGNED_KEY: &str = r"-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgHbPfQbXbVSsSR5gZ
Svcp6nWEsmRisUNiE41gmvAwOM+hRANCAAQALhZdd+JbnRzoLF6/oRWmG6SzI93q
ay1O+va+uhxYUxuDFgdu4pZlHcFfOIB8U6VA7NMKQLDsM6grmzPWsnHK
-----END PRIVATE KEY-----
";

/// Serves `ok` over HTTPS with the self-signed certificate until the task is dropped.
async fn https_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let cert = CertificateDer::from_pem_slice(SELF_SIGNED_CERT.as_bytes()).expect("certificate");
    let key = PrivateKeyDer::from_pem_slice(SELF_SIGNED_KEY.as_bytes()).expect("key");
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("TLS server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: not an error here.
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(|_request| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, task)
}

/// A probe as an operator writes it in the YAML file (so the defaults are the parser's).
fn probe_yaml(name: &str, url: &str, extra: &str) -> ProbeConfig {
    let yaml = format!(
        "name: {name}\nregion: us-east-1\nkind: http\nurl: {url}\ninterval: 300ms\ntimeout: 300ms\n{extra}"
    );
    serde_yaml_ng::from_str(&yaml).expect("probe YAML")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_by_default_and_can_be_turned_off() {
    let (addr, server) = https_server().await;
    let url = format!("https://{addr}/healthz");
    let verified = probe_yaml("verified", &url, "");
    assert_eq!(
        verified.tls_verify, None,
        "not set: verification is on (what the probes below show)"
    );
    let unverified = probe_yaml("unverified", &url, "tls_verify: false\n");
    let config = HealthConfig {
        unhealthy_after: 2,
        healthy_after: 2,
        min_failing: 1,
        require_distinct_kinds: false,
        probes: vec![verified, unverified],
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let handle =
        HealthMonitor::spawn_until(&config, HealthPorts::default(), &Registry::new(), async {
            let _ = stopped.await;
        })
        .expect("start the monitor");

    let settled = tokio::time::timeout(DEADLINE, async {
        loop {
            let probes = handle.snapshot().probes;
            if probes.iter().all(|p| p.state != ProbeState::Pending) {
                return probes;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("both probes reach a state");
    let find = |name: &str| -> ProbeStatus {
        settled
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .expect("probe")
    };
    let verified = find("verified");
    assert_eq!(verified.state, ProbeState::Down, "{verified:?}");
    let error = verified.last_error.unwrap_or_default().to_lowercase();
    assert!(error.contains("certificate"), "{error}");
    let unverified = find("unverified");
    assert_eq!(unverified.state, ProbeState::Up, "{unverified:?}");

    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, handle.stopped())
        .await
        .expect("the monitor stops");
    server.abort();
}
