//! Kubernetes adapters: one [`KubeCluster`] per region implementing [`ClusterApi`] on the `kube`
//! crate (rustls with ring, like the AWS clients).
//!
//! How a cluster is reached comes from `gitops.clusters[].connect`: in-cluster (the service
//! account of the pod failoverd runs in), an EKS endpoint and CA with a token failoverd makes
//! itself ([`eks_token`]; remade before it expires), a kubeconfig file and context, or an
//! endpoint with a bearer token from a secret.
//!
//! The client is built lazily and rebuilt when its EKS token is due: building needs no network,
//! and a cluster that cannot be reached (or configured) makes its calls fail with a neutral
//! [`crate::port::Error`] — reported in `/v1/status`, never fatal to the daemon. Every call is
//! bounded by the request timeout; errors are classified like the AWS ones (409 is `conflict`,
//! 429 `throttled`, 5xx and connection failures `unavailable`, timeouts `timeout`, all
//! retryable; 401/403 `access_denied`, 404 `not_found`, 400/422 `invalid`).
//!
//! Flux and Argo CD kinds are found through discovery (the group's preferred version, so a
//! cluster serving `kustomize.toolkit.fluxcd.io/v1` and one still on `v1beta2` both work);
//! discovery results are cached per cluster.

pub mod eks_token;
pub mod journal;
pub mod lease;
pub mod objects;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::core::ApiResource;
use async_trait::async_trait;
use aws_types::sdk_config::SharedCredentialsProvider;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::config::{ConnectWay, GitOpsConfig};
use crate::gitops::{ClusterApi, ObjectKind, ObjectRef};
use crate::port::{Error, ErrorKind, Result, Service};

/// How to reach one cluster, resolved from the configuration.
#[derive(Clone)]
pub enum Connect {
    InCluster,
    Kubeconfig {
        path: Option<PathBuf>,
        context: Option<String>,
    },
    Token {
        endpoint: String,
        ca_file: Option<PathBuf>,
        /// Read from its secret when the client is built.
        token: crate::config::SecretRef,
    },
    Eks {
        cluster_name: String,
        endpoint: String,
        ca_file: PathBuf,
        /// The region of the STS endpoint that signs the token (the cluster's region).
        region: String,
        /// `None` when the AWS chain has no provider at all (the token then cannot be made).
        credentials: Option<SharedCredentialsProvider>,
    },
}

/// Timeouts of one cluster's calls.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
}

struct Cached {
    client: ::kube::Client,
    /// When the client's token is due for renewal (EKS only).
    renew_at: Option<Instant>,
}

/// One region's Kubernetes API.
pub struct KubeCluster {
    region: String,
    connect: Connect,
    timeouts: Timeouts,
    client: tokio::sync::Mutex<Option<Cached>>,
    resources: Mutex<HashMap<ObjectKind, ApiResource>>,
}

fn err(kind: ErrorKind, operation: &str, message: impl Into<String>) -> Error {
    Error::new(kind, Service::Kubernetes, operation, message)
}

/// Folds a `kube` error into the neutral vocabulary.
fn classify(operation: &str, e: ::kube::Error) -> Error {
    match e {
        ::kube::Error::Api(status) => {
            let kind = match status.code {
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                429 => ErrorKind::Throttled,
                401 | 403 => ErrorKind::AccessDenied,
                400 | 415 | 422 => ErrorKind::Invalid,
                504 => ErrorKind::Timeout,
                500..=599 => ErrorKind::Unavailable,
                _ => ErrorKind::Other,
            };
            let mut out = err(kind, operation, status.message.clone());
            out.code = Some(status.reason.clone()).filter(|r| !r.is_empty());
            out
        }
        ::kube::Error::HyperError(e) => {
            let text = crate::error_chain::error_chain(&e);
            let kind = if text.to_ascii_lowercase().contains("timed out") {
                ErrorKind::Timeout
            } else {
                ErrorKind::Unavailable
            };
            err(kind, operation, text)
        }
        ::kube::Error::Service(e) => {
            let text = crate::error_chain::error_chain(&*e);
            let lower = text.to_ascii_lowercase();
            let kind = if lower.contains("timed out") || lower.contains("elapsed") {
                ErrorKind::Timeout
            } else {
                ErrorKind::Unavailable
            };
            err(kind, operation, text)
        }
        other => err(
            ErrorKind::Other,
            operation,
            crate::error_chain::error_chain(&other),
        ),
    }
}

impl KubeCluster {
    pub fn new(region: impl Into<String>, connect: Connect, timeouts: Timeouts) -> Self {
        Self {
            region: region.into(),
            connect,
            timeouts,
            client: tokio::sync::Mutex::new(None),
            resources: Mutex::new(HashMap::new()),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    async fn config(&self) -> Result<(::kube::Config, Option<Instant>)> {
        let op = "Connect";
        let invalid = |m: String| err(ErrorKind::Invalid, op, m);
        let with_endpoint = |endpoint: &str, ca: Option<&PathBuf>| -> Result<::kube::Config> {
            let uri = endpoint
                .parse::<http::Uri>()
                .map_err(|e| invalid(format!("endpoint {endpoint:?}: {e}")))?;
            let mut c = ::kube::Config::new(uri);
            if let Some(ca) = ca {
                let pem = std::fs::read(ca)
                    .map_err(|e| invalid(format!("cannot read {}: {e}", ca.display())))?;
                c.root_cert = Some(
                    pem_certificates(&pem)
                        .map_err(|m| invalid(format!("{}: {m}", ca.display())))?,
                );
            }
            Ok(c)
        };
        let (mut config, renew_at) = match &self.connect {
            Connect::InCluster => (
                ::kube::Config::incluster()
                    .map_err(|e| invalid(format!("not running in a cluster: {e}")))?,
                None,
            ),
            Connect::Kubeconfig { path, context } => {
                let options = KubeConfigOptions {
                    context: context.clone(),
                    ..Default::default()
                };
                let config = match path {
                    Some(p) => {
                        let file = Kubeconfig::read_from(p)
                            .map_err(|e| invalid(format!("{}: {e}", p.display())))?;
                        ::kube::Config::from_custom_kubeconfig(file, &options).await
                    }
                    None => ::kube::Config::from_kubeconfig(&options).await,
                }
                .map_err(|e| invalid(format!("kubeconfig: {e}")))?;
                (config, None)
            }
            Connect::Token {
                endpoint,
                ca_file,
                token,
            } => {
                let mut c = with_endpoint(endpoint, ca_file.as_ref())?;
                let t = token
                    .resolve()
                    .map_err(|e| err(ErrorKind::AccessDenied, op, e.to_string()))?;
                c.auth_info.token = Some(t.into());
                (c, None)
            }
            Connect::Eks {
                cluster_name,
                endpoint,
                ca_file,
                region,
                credentials,
            } => {
                let mut c = with_endpoint(endpoint, Some(ca_file))?;
                let credentials = credentials.as_ref().ok_or_else(|| {
                    err(
                        ErrorKind::AccessDenied,
                        op,
                        "no AWS credentials provider to sign the EKS token with",
                    )
                })?;
                let t = eks_token::token(credentials, region, cluster_name)
                    .await
                    .map_err(|e| err(ErrorKind::AccessDenied, op, e.to_string()))?;
                c.auth_info.token = Some(t.into());
                (c, Some(Instant::now() + eks_token::REFRESH_AFTER))
            }
        };
        config.connect_timeout = Some(self.timeouts.connect);
        config.read_timeout = Some(self.timeouts.request);
        config.write_timeout = Some(self.timeouts.request);
        config.reset_reader_on_write = true;
        // failoverd retries at its own level, within a step's deadline.
        config.default_retry = false;
        Ok((config, renew_at))
    }

    async fn client(&self) -> Result<::kube::Client> {
        let mut cached = self.client.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.renew_at.is_none_or(|at| Instant::now() < at) {
                return Ok(c.client.clone());
            }
        }
        let (config, renew_at) = self.config().await?;
        let client = ::kube::Client::try_from(config).map_err(|e| classify("Connect", e))?;
        *cached = Some(Cached {
            client: client.clone(),
            renew_at,
        });
        Ok(client)
    }

    async fn resource(&self, kind: ObjectKind) -> Result<ApiResource> {
        if let Some(r) = self.resources.lock().expect("lock").get(&kind) {
            return Ok(r.clone());
        }
        let r = if kind.is_flux() || kind == ObjectKind::Application {
            let client = self.client().await?;
            let group = self
                .bounded("Discovery", ::kube::discovery::group(&client, kind.group()))
                .await
                .map_err(|e| {
                    if e.kind == ErrorKind::NotFound {
                        err(
                            ErrorKind::NotFound,
                            "Discovery",
                            format!(
                                "the API group {} is not served (is {} installed?)",
                                kind.group(),
                                if kind.is_flux() { "Flux" } else { "Argo CD" }
                            ),
                        )
                    } else {
                        e
                    }
                })?;
            group
                .recommended_kind(kind.as_str())
                .map(|(ar, _)| ar)
                .ok_or_else(|| {
                    err(
                        ErrorKind::NotFound,
                        "Discovery",
                        format!("the API group {} serves no {kind}", kind.group()),
                    )
                })?
        } else {
            let version = kind.default_version();
            ApiResource {
                group: kind.group().to_owned(),
                version: version.to_owned(),
                api_version: format!("{}/{version}", kind.group()),
                kind: kind.as_str().to_owned(),
                plural: kind.plural().to_owned(),
            }
        };
        self.resources.lock().expect("lock").insert(kind, r.clone());
        Ok(r)
    }

    async fn bounded<T>(
        &self,
        operation: &str,
        call: impl std::future::Future<Output = std::result::Result<T, ::kube::Error>>,
    ) -> Result<T> {
        let limit = self.timeouts.connect + self.timeouts.request;
        match tokio::time::timeout(limit, call).await {
            Ok(r) => r.map_err(|e| classify(operation, e)),
            Err(_) => Err(err(
                ErrorKind::Timeout,
                operation,
                format!(
                    "{} did not answer within {}",
                    self.region,
                    humantime::format_duration(limit)
                ),
            )),
        }
    }

    async fn api(&self, kind: ObjectKind, namespace: &str) -> Result<Api<DynamicObject>> {
        let ar = self.resource(kind).await?;
        let client = self.client().await?;
        Ok(Api::namespaced_with(client, namespace, &ar))
    }
}

fn to_value(obj: DynamicObject, operation: &str) -> Result<Value> {
    serde_json::to_value(obj).map_err(|e| err(ErrorKind::Other, operation, e.to_string()))
}

/// The DER certificates of a PEM bundle.
fn pem_certificates(pem: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
    use base64::Engine;
    let text = std::str::from_utf8(pem).map_err(|_| "not a PEM file".to_owned())?;
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            body = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            let b = body.take().ok_or("END without BEGIN")?;
            out.push(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| format!("bad base64 in a certificate: {e}"))?,
            );
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    if out.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(out)
}

#[async_trait]
impl ClusterApi for KubeCluster {
    async fn get(&self, object: &ObjectRef) -> Result<Option<Value>> {
        let api = self.api(object.kind, &object.namespace).await?;
        self.bounded("Get", api.get_opt(&object.name))
            .await?
            .map(|o| to_value(o, "Get"))
            .transpose()
    }

    async fn list(
        &self,
        kind: ObjectKind,
        namespace: &str,
        label_selector: &str,
    ) -> Result<Vec<Value>> {
        let api = self.api(kind, namespace).await?;
        let mut params = ListParams::default();
        if !label_selector.is_empty() {
            params = params.labels(label_selector);
        }
        let list = self.bounded("List", api.list(&params)).await?;
        list.items
            .into_iter()
            .map(|o| to_value(o, "List"))
            .collect()
    }

    async fn merge_patch(&self, object: &ObjectRef, patch: &Value) -> Result<Value> {
        let api = self.api(object.kind, &object.namespace).await?;
        let params = PatchParams::default();
        let patched = self
            .bounded(
                "Patch",
                api.patch(&object.name, &params, &Patch::Merge(patch)),
            )
            .await?;
        to_value(patched, "Patch")
    }

    async fn scale(&self, object: &ObjectRef, replicas: i32) -> Result<()> {
        if !object.kind.is_workload() {
            return Err(err(
                ErrorKind::Invalid,
                "PatchScale",
                format!("{object} has no scale subresource"),
            ));
        }
        let api = self.api(object.kind, &object.namespace).await?;
        let patch = json!({"spec": {"replicas": replicas}});
        self.bounded(
            "PatchScale",
            api.patch_scale(&object.name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await?;
        Ok(())
    }
}

/// A [`Connect`] for `connect`; `region` is the cluster's (it signs EKS tokens).
fn connect_of(
    connect: &crate::config::ClusterConnect,
    region: &str,
    credentials: Option<SharedCredentialsProvider>,
) -> Connect {
    match connect.way() {
        ConnectWay::InCluster => Connect::InCluster,
        ConnectWay::Kubeconfig(k) => Connect::Kubeconfig {
            path: k.path.clone(),
            context: k.context.clone(),
        },
        ConnectWay::Token(t) => Connect::Token {
            endpoint: t.endpoint.clone(),
            ca_file: t.ca_file.clone(),
            token: t.token.clone(),
        },
        ConnectWay::Eks(e) => Connect::Eks {
            cluster_name: e.cluster_name.clone(),
            endpoint: e.endpoint.clone(),
            ca_file: e.ca_file.clone(),
            region: region.to_owned(),
            credentials,
        },
    }
}

/// This process's name for the Lease: `POD_NAME` (the Deployment sets it from the downward API),
/// else the host name, with a random suffix.
fn holder_identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "failoverd".to_owned());
    lease::identity(&base)
}

fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: format!("{group}/{version}"),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

/// The run journal and the leader Lease of `state.store: kubernetes`, in the cluster of
/// `config` (`region` is that cluster's, for EKS tokens). Nothing is contacted here.
pub fn state_backend(
    config: &crate::config::KubernetesState,
    region_pair: &str,
    region: &str,
    credentials: Option<SharedCredentialsProvider>,
) -> (journal::KubeStore, lease::LeaseLeadership) {
    let timeouts = Timeouts {
        connect: config.connect_timeout.get(),
        request: config.request_timeout.get(),
    };
    let cluster = Arc::new(KubeCluster::new(
        region,
        connect_of(&config.connect, region, credentials),
        timeouts,
    ));
    let objects = |kind: &str, plural: &str| -> Arc<dyn objects::Objects> {
        Arc::new(objects::KubeObjects::new(
            Arc::clone(&cluster),
            api_resource("failoverd.io", "v1alpha1", kind, plural),
            &config.namespace,
        ))
    };
    let store = journal::KubeStore::new(
        journal::JournalObjects {
            runs: objects("FailoverdRun", "failoverdruns"),
            states: objects("FailoverdState", "failoverdstates"),
            keys: objects("FailoverdIdempotencyKey", "failoverdidempotencykeys"),
        },
        region_pair,
    );
    let leases = Arc::new(objects::KubeObjects::new(
        Arc::clone(&cluster),
        api_resource("coordination.k8s.io", "v1", "Lease", "leases"),
        &config.namespace,
    ));
    let leadership = lease::LeaseLeadership::with_system_clock(
        leases,
        lease::LeaseSettings {
            name: config.lease_name.clone(),
            identity: holder_identity(),
            duration: config.lease_duration.get(),
            renew_interval: config.renew_interval.get(),
            max_clock_skew: config.max_clock_skew.get(),
            release_on_drop: true,
        },
    );
    (store, leadership)
}

/// The clusters of `config`. `credentials` sign EKS tokens (the AWS clients' chain). Nothing is
/// contacted here.
pub fn clusters(
    config: &GitOpsConfig,
    credentials: Option<SharedCredentialsProvider>,
) -> Vec<KubeCluster> {
    let timeouts = Timeouts {
        connect: config.connect_timeout.get(),
        request: config.request_timeout.get(),
    };
    config
        .clusters
        .iter()
        .map(|c| {
            let connect = connect_of(&c.connect, &c.region, credentials.clone());
            KubeCluster::new(&c.region, connect, timeouts)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_bundles_decode() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_certificates(pem).unwrap(), vec![vec![0, 1, 2, 3]]);
        assert!(pem_certificates(b"nothing").is_err());
    }
}
