//! Whole-object access to one resource type in one namespace, with the apiserver's optimistic
//! concurrency: what the Lease leadership ([`super::lease`]) and the run journal
//! ([`super::journal`]) are built on.
//!
//! [`Objects`] is the port; [`KubeObjects`] speaks to an API server through a [`KubeCluster`] (so
//! it shares its connection, timeouts and error classification), [`MemoryObjects`] keeps the
//! objects in memory with the same rules (a resourceVersion counter shared by every resource of
//! one "cluster", `409` on a stale `resourceVersion` or an existing name, preconditioned
//! deletes). The memory one lets the deterministic simulation drive the leadership and the journal
//! under paused time; everything it emulates is also exercised against the API emulator.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ::kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams, Preconditions};
use ::kube::core::ApiResource;
use async_trait::async_trait;
use serde_json::Value;

use super::{err, KubeCluster};
use crate::port::{ErrorKind, Result};

/// The `reason` of a `409` for a name that is taken (the other `409` is `Conflict`).
pub const ALREADY_EXISTS: &str = "AlreadyExists";

/// Objects of one kind in one namespace, read and written whole.
#[async_trait]
pub trait Objects: Send + Sync + 'static {
    /// The object, or `None` when there is none by that name.
    async fn get(&self, name: &str) -> Result<Option<Value>>;
    /// Create `object` (its `metadata.name` is the name); an existing name is a
    /// [`ErrorKind::Conflict`] with code [`ALREADY_EXISTS`]. Returns the stored object.
    async fn create(&self, object: &Value) -> Result<Value>;
    /// Replace the object named `name`; `object` carries the `metadata.resourceVersion` it was
    /// read at, and a newer stored one is a [`ErrorKind::Conflict`]. Returns the stored object.
    async fn replace(&self, name: &str, object: &Value) -> Result<Value>;
    /// Delete the object if it is still at `resource_version` (when given); `Ok(false)` when there
    /// was none.
    async fn delete(&self, name: &str, resource_version: Option<&str>) -> Result<bool>;
    /// Every object matching `label_selector` (empty: all), read page by page.
    async fn list(&self, label_selector: &str) -> Result<Vec<Value>>;
}

/// The `metadata.resourceVersion` of an object.
pub fn resource_version(object: &Value) -> Option<&str> {
    object.pointer("/metadata/resourceVersion")?.as_str()
}

/// [`Objects`] on an API server.
pub struct KubeObjects {
    cluster: Arc<KubeCluster>,
    resource: ApiResource,
    namespace: String,
}

/// Objects listed per request.
const PAGE: u32 = 250;

impl KubeObjects {
    pub fn new(cluster: Arc<KubeCluster>, resource: ApiResource, namespace: &str) -> Self {
        Self {
            cluster,
            resource,
            namespace: namespace.to_owned(),
        }
    }

    async fn api(&self) -> Result<Api<DynamicObject>> {
        let client = self.cluster.client().await?;
        Ok(Api::namespaced_with(
            client,
            &self.namespace,
            &self.resource,
        ))
    }
}

fn decode(operation: &str, object: &Value) -> Result<DynamicObject> {
    serde_json::from_value(object.clone())
        .map_err(|e| err(ErrorKind::Invalid, operation, format!("not an object: {e}")))
}

fn encode(operation: &str, object: DynamicObject) -> Result<Value> {
    serde_json::to_value(object).map_err(|e| err(ErrorKind::Other, operation, e.to_string()))
}

#[async_trait]
impl Objects for KubeObjects {
    async fn get(&self, name: &str) -> Result<Option<Value>> {
        let api = self.api().await?;
        self.cluster
            .bounded("Get", api.get_opt(name))
            .await?
            .map(|o| encode("Get", o))
            .transpose()
    }

    async fn create(&self, object: &Value) -> Result<Value> {
        let api = self.api().await?;
        let object = decode("Create", object)?;
        let created = self
            .cluster
            .bounded("Create", api.create(&PostParams::default(), &object))
            .await?;
        encode("Create", created)
    }

    async fn replace(&self, name: &str, object: &Value) -> Result<Value> {
        let api = self.api().await?;
        let object = decode("Replace", object)?;
        let replaced = self
            .cluster
            .bounded(
                "Replace",
                api.replace(name, &PostParams::default(), &object),
            )
            .await?;
        encode("Replace", replaced)
    }

    async fn delete(&self, name: &str, resource_version: Option<&str>) -> Result<bool> {
        let api = self.api().await?;
        let params = DeleteParams {
            preconditions: resource_version.map(|rv| Preconditions {
                resource_version: Some(rv.to_owned()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match self
            .cluster
            .bounded("Delete", api.delete(name, &params))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, label_selector: &str) -> Result<Vec<Value>> {
        let api = self.api().await?;
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut params = ListParams::default().limit(PAGE);
            if !label_selector.is_empty() {
                params = params.labels(label_selector);
            }
            if let Some(token) = next.take() {
                params = params.continue_token(&token);
            }
            let page = self.cluster.bounded("List", api.list(&params)).await?;
            for item in page.items {
                out.push(encode("List", item)?);
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => next = Some(token),
                _ => return Ok(out),
            }
        }
    }
}

/// One emulated cluster's objects (every kind and namespace share its resourceVersion counter,
/// as they share etcd's revision).
#[derive(Default)]
pub struct MemoryCluster {
    inner: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    revision: u64,
    /// (kind, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Value>,
    /// Calls to fail with `Unavailable` (after the write when `lose_ack`), counted down.
    failures: u32,
    lose_ack: bool,
}

impl MemoryCluster {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The objects of `kind` in `namespace`.
    pub fn objects(self: &Arc<Self>, kind: &str, namespace: &str) -> MemoryObjects {
        MemoryObjects {
            cluster: Arc::clone(self),
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    /// Make the next `calls` calls fail as unavailable; with `lose_ack`, writes are applied first
    /// (the answer was lost), otherwise not at all.
    pub fn fail_next(&self, calls: u32, lose_ack: bool) {
        let mut s = self.inner.lock().expect("lock");
        s.failures = calls;
        s.lose_ack = lose_ack;
    }

    /// A stored object, read without going through the failure switch.
    pub fn peek(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let s = self.inner.lock().expect("lock");
        s.objects
            .get(&(kind.to_owned(), namespace.to_owned(), name.to_owned()))
            .cloned()
    }
}

/// [`Objects`] kept in a [`MemoryCluster`].
pub struct MemoryObjects {
    cluster: Arc<MemoryCluster>,
    kind: String,
    namespace: String,
}

fn unavailable(operation: &str) -> crate::port::Error {
    err(
        ErrorKind::Unavailable,
        operation,
        "the emulated API server is unavailable",
    )
}

impl MemoryObjects {
    fn key(&self, name: &str) -> (String, String, String) {
        (self.kind.clone(), self.namespace.clone(), name.to_owned())
    }

    /// Runs `op` on the state under the failure switch: `Err` before it when failing without
    /// `lose_ack`, after it (the effect kept) with.
    fn call<T>(
        &self,
        operation: &str,
        op: impl FnOnce(&mut MemoryState) -> Result<T>,
    ) -> Result<T> {
        let mut s = self.cluster.inner.lock().expect("lock");
        if s.failures > 0 {
            s.failures -= 1;
            if s.lose_ack {
                let _ = op(&mut s);
            }
            return Err(unavailable(operation));
        }
        op(&mut s)
    }

    fn stamp(s: &mut MemoryState, mut object: Value, name: &str, namespace: &str) -> Value {
        s.revision += 1;
        if let Some(meta) = object
            .as_object_mut()
            .map(|o| {
                o.entry("metadata")
                    .or_insert_with(|| Value::Object(Default::default()))
            })
            .and_then(Value::as_object_mut)
        {
            meta.insert("name".into(), Value::from(name));
            meta.insert("namespace".into(), Value::from(namespace));
            meta.insert(
                "resourceVersion".into(),
                Value::from(s.revision.to_string()),
            );
        }
        object
    }
}

fn conflict(operation: &str, code: &str, message: String) -> crate::port::Error {
    let mut e = err(ErrorKind::Conflict, operation, message);
    e.code = Some(code.to_owned());
    e
}

#[async_trait]
impl Objects for MemoryObjects {
    async fn get(&self, name: &str) -> Result<Option<Value>> {
        let key = self.key(name);
        self.call("Get", |s| Ok(s.objects.get(&key).cloned()))
    }

    async fn create(&self, object: &Value) -> Result<Value> {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| err(ErrorKind::Invalid, "Create", "metadata.name is required"))?
            .to_owned();
        let key = self.key(&name);
        let namespace = self.namespace.clone();
        let kind = self.kind.clone();
        self.call("Create", |s| {
            if s.objects.contains_key(&key) {
                return Err(conflict(
                    "Create",
                    ALREADY_EXISTS,
                    format!("{kind} {name:?} already exists"),
                ));
            }
            let stored = Self::stamp(s, object.clone(), &name, &namespace);
            s.objects.insert(key, stored.clone());
            Ok(stored)
        })
    }

    async fn replace(&self, name: &str, object: &Value) -> Result<Value> {
        let key = self.key(name);
        let namespace = self.namespace.clone();
        let kind = self.kind.clone();
        self.call("Replace", |s| {
            let current = s.objects.get(&key).ok_or_else(|| {
                err(
                    ErrorKind::NotFound,
                    "Replace",
                    format!("{kind} {name:?} not found"),
                )
            })?;
            match resource_version(object) {
                Some(rv) if Some(rv) == resource_version(current) => {}
                _ => {
                    return Err(conflict(
                        "Replace",
                        "Conflict",
                        format!("the object has been modified; please apply your changes to the latest version and try again ({kind} {name:?})"),
                    ))
                }
            }
            let stored = Self::stamp(s, object.clone(), name, &namespace);
            s.objects.insert(key, stored.clone());
            Ok(stored)
        })
    }

    async fn delete(&self, name: &str, resource_version_: Option<&str>) -> Result<bool> {
        let key = self.key(name);
        self.call("Delete", |s| {
            let Some(current) = s.objects.get(&key) else {
                return Ok(false);
            };
            if let Some(rv) = resource_version_ {
                if resource_version(current) != Some(rv) {
                    return Err(conflict(
                        "Delete",
                        "Conflict",
                        "the precondition on resourceVersion failed".into(),
                    ));
                }
            }
            s.objects.remove(&key);
            Ok(true)
        })
    }

    async fn list(&self, label_selector: &str) -> Result<Vec<Value>> {
        let wanted: Vec<(&str, &str)> = label_selector
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .collect();
        let (kind, namespace) = (self.kind.clone(), self.namespace.clone());
        self.call("List", |s| {
            Ok(s.objects
                .iter()
                .filter(|((k, ns, _), _)| *k == kind && *ns == namespace)
                .map(|(_, o)| o)
                .filter(|o| {
                    wanted.iter().all(|(k, v)| {
                        o.pointer("/metadata/labels")
                            .and_then(|l| l.get(*k))
                            .and_then(Value::as_str)
                            == Some(*v)
                    })
                })
                .cloned()
                .collect())
        })
    }
}
