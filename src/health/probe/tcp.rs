//! The TCP probe: a connection to `host:port` (or an address) is accepted.

use std::net::SocketAddr;

use super::dns::Resolver;
use super::{ProbeError, ProbeOutcome};

pub(super) async fn check_tcp(
    resolver: &Resolver,
    address: &str,
) -> Result<ProbeOutcome, ProbeError> {
    let targets: Vec<SocketAddr> = match address.parse::<SocketAddr>() {
        Ok(addr) => vec![addr],
        Err(_) => {
            let (host, port) = address
                .rsplit_once(':')
                .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p)))
                .ok_or_else(|| ProbeError::Resolve {
                    host: address.to_owned(),
                    reason: "not host:port".to_owned(),
                })?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            resolver.resolve(host, port).await?
        }
    };
    let mut last_error = String::from("no address to connect to");
    for target in targets {
        match tokio::net::TcpStream::connect(target).await {
            Ok(_stream) => return Ok(ProbeOutcome::Pass),
            Err(e) => last_error = format!("{target}: {e}"),
        }
    }
    Err(ProbeError::Connect {
        address: address.to_owned(),
        reason: last_error,
    })
}
