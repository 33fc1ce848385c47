//! The DNS probe (the name resolves, optionally to an expected address) and the bounded system
//! resolver it and the TCP probe share.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{ProbeError, ProbeOutcome};

pub(super) async fn check_dns(
    resolver: &Resolver,
    hostname: &str,
    expect: Option<IpAddr>,
) -> Result<ProbeOutcome, ProbeError> {
    let answers = resolver.resolve(hostname, 0).await?;
    if answers.is_empty() {
        return Err(ProbeError::NoAddress {
            host: hostname.to_owned(),
        });
    }
    match expect {
        Some(expected) if !answers.iter().any(|a| a.ip() == expected) => {
            let mut ips: Vec<String> = answers.iter().map(|a| a.ip().to_string()).collect();
            ips.dedup();
            Err(ProbeError::UnexpectedAddress {
                host: hostname.to_owned(),
                expected,
                answers: ips.join(", "),
            })
        }
        _ => Ok(ProbeOutcome::Pass),
    }
}

/// The system resolver on a blocking thread, at most one resolution in flight per probe.
#[derive(Default)]
pub(super) struct Resolver {
    busy: Arc<AtomicBool>,
}

/// Clears the in-flight flag when the blocking resolution ends, however it ends.
struct BusyGuard(Arc<AtomicBool>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Resolver {
    pub(super) async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, ProbeError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(ProbeError::ResolverBusy {
                host: host.to_owned(),
            });
        }
        let guard = BusyGuard(self.busy.clone());
        let owned = host.to_owned();
        let lookup = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            (owned.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect::<Vec<_>>())
        });
        match lookup.await {
            Ok(Ok(addrs)) => Ok(addrs),
            Ok(Err(e)) => Err(ProbeError::Resolve {
                host: host.to_owned(),
                reason: e.to_string(),
            }),
            Err(e) => Err(ProbeError::Resolve {
                host: host.to_owned(),
                reason: format!("resolver task failed: {e}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn dns_probe_checks_the_expected_address() {
        // `localhost` resolves through /etc/hosts on every Linux; an IP literal needs no lookup.
        let resolver = Resolver::default();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(matches!(
            check_dns(&resolver, "127.0.0.1", Some(loopback)).await,
            Ok(ProbeOutcome::Pass)
        ));
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        let err = check_dns(&resolver, "127.0.0.1", Some(other))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, ProbeError::UnexpectedAddress { .. }), "{err}");
        assert!(matches!(
            check_dns(&resolver, "localhost", None).await,
            Ok(ProbeOutcome::Pass)
        ));
        // `.invalid` never resolves (RFC 6761); bounded in case the sandbox's resolver is slow.
        let err = tokio::time::timeout(
            Duration::from_secs(30),
            check_dns(&resolver, "no-such-host.invalid", None),
        )
        .await
        .expect("the system resolver answered within 30 s")
        .err()
        .unwrap();
        assert!(matches!(err, ProbeError::Resolve { .. }), "{err}");
    }

    #[test]
    fn a_busy_resolver_refuses_a_second_lookup() {
        let resolver = Resolver::default();
        resolver.busy.store(true, Ordering::Release);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt
            .block_on(resolver.resolve("example.com", 80))
            .unwrap_err();
        assert!(matches!(err, ProbeError::ResolverBusy { .. }));
        // An IP literal needs no resolver, busy or not.
        assert!(rt.block_on(resolver.resolve("10.0.0.1", 80)).is_ok());
    }
}
