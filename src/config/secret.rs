//! Secrets are referenced, never written into the configuration file.
//!
//! A configuration file is read by many people and often committed to Git; a password in it leaks.
//! A [`SecretRef`] names where the secret lives — a file (a mounted Kubernetes Secret) or an
//! environment variable — and is resolved only when the component that needs it starts.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Where a secret is read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// Read from this file; surrounding whitespace is trimmed.
    File(PathBuf),
    /// Read from this environment variable.
    Env(String),
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    #[error("secret from {0} is empty")]
    Empty(String),
}

impl SecretRef {
    /// Reads the secret now.
    pub fn resolve(&self) -> Result<String, SecretError> {
        let (value, origin) = match self {
            SecretRef::File(path) => (
                std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?,
                path.display().to_string(),
            ),
            SecretRef::Env(name) => (
                std::env::var(name).map_err(|_| SecretError::EnvMissing(name.clone()))?,
                format!("${name}"),
            ),
        };
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(SecretError::Empty(origin));
        }
        Ok(value)
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;

        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = SecretRef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`{file: PATH}` or `{env: VARIABLE}`")
            }

            fn visit_str<E: de::Error>(self, _v: &str) -> Result<SecretRef, E> {
                Err(E::custom(
                    "inline secrets are not allowed; reference the secret with `{file: PATH}` or `{env: VARIABLE}`",
                ))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
                let mut found: Option<SecretRef> = None;
                while let Some(key) = map.next_key::<String>()? {
                    let value = match key.as_str() {
                        "file" => SecretRef::File(map.next_value::<PathBuf>()?),
                        "env" => SecretRef::Env(map.next_value::<String>()?),
                        other => {
                            return Err(de::Error::unknown_field(other, &["file", "env"]));
                        }
                    };
                    if found.is_some() {
                        return Err(de::Error::custom("give exactly one of `file` or `env`"));
                    }
                    found = Some(value);
                }
                found.ok_or_else(|| de::Error::custom("give exactly one of `file` or `env`"))
            }
        }

        deserializer.deserialize_any(SecretVisitor)
    }
}
