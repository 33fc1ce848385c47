//! Bearer-token authentication with two roles, `viewer` < `operator`.
//!
//! The tokens file stores only SHA-256 hashes of the tokens (tokens are long random strings, not
//! passwords, so a fast hash is the right tool: there is nothing to brute-force). A presented
//! token is hashed and compared with **every** entry in constant time, so neither the comparison
//! nor the position of the matching entry shows in the response time.
//!
//! File format (YAML):
//!
//! ```yaml
//! tokens:
//!   - name: sre-oncall        # shown in the audit log
//!     role: operator          # viewer | operator
//!     sha256: 3f1c…           # `failoverd hash-token` prints this line
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token may do. Ordered: an operator can do everything a viewer can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read status, runs and events.
    Viewer,
    /// Also start, approve and abort runs.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

/// The identity behind an accepted token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    role: Role,
    sha256: String,
}

struct StoredToken {
    name: String,
    role: Role,
    hash: [u8; 32],
}

/// The accepted tokens.
#[derive(Default)]
pub struct TokenSet {
    tokens: Vec<StoredToken>,
}

/// Why a tokens file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read tokens file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("tokens file {path}: {message}")]
    Invalid { path: String, message: String },
}

/// The SHA-256 of a token, as lowercase hex: what the tokens file stores.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token: 32 bytes from the OS generator, hex encoded (256 bits of entropy).
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("fod_{}", hex::encode(bytes))
}

impl TokenSet {
    /// Loads a tokens file; every problem names the entry it is in.
    pub fn load(path: &Path) -> Result<Self, TokensError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| TokensError::Invalid {
            path: shown,
            message,
        })
    }

    /// Parses the text of a tokens file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: TokensFile = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let mut names = BTreeSet::new();
        let mut tokens = Vec::with_capacity(file.tokens.len());
        let mut problems = Vec::new();
        for (i, entry) in file.tokens.into_iter().enumerate() {
            if entry.name.trim().is_empty() {
                problems.push(format!("tokens[{i}].name: must not be empty"));
            }
            if !names.insert(entry.name.clone()) {
                problems.push(format!("tokens[{i}].name: {} is used twice", entry.name));
            }
            let mut hash = [0u8; 32];
            match hex::decode(entry.sha256.trim()) {
                Ok(bytes) if bytes.len() == 32 => hash.copy_from_slice(&bytes),
                _ => {
                    problems.push(format!(
                        "tokens[{i}].sha256: must be 64 hex characters (the output of `failoverd hash-token`)"
                    ));
                    continue;
                }
            }
            tokens.push(StoredToken {
                name: entry.name,
                role: entry.role,
                hash,
            });
        }
        if problems.is_empty() {
            Ok(Self { tokens })
        } else {
            Err(problems.join("; "))
        }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The principal for a presented token, if it is one of ours. Examines every entry whatever
    /// matches, in constant time per entry.
    pub fn authenticate(&self, presented: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<&StoredToken> = None;
        for stored in &self.tokens {
            let equal: bool = stored.hash.ct_eq(&digest).into();
            if equal && found.is_none() {
                found = Some(stored);
            }
        }
        found.map(|t| Principal {
            name: t.name.clone(),
            role: t.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(entries: &[(&str, &str, &str)]) -> String {
        let mut s = String::from("tokens:\n");
        for (name, role, token) in entries {
            s.push_str(&format!(
                "  - name: {name}\n    role: {role}\n    sha256: {}\n",
                hash_token(token)
            ));
        }
        s
    }

    #[test]
    fn authenticates_by_hash() {
        let set =
            TokenSet::parse(&file(&[("a", "viewer", "t1"), ("b", "operator", "t2")])).unwrap();
        assert_eq!(
            set.authenticate("t2"),
            Some(Principal {
                name: "b".into(),
                role: Role::Operator
            })
        );
        assert_eq!(set.authenticate("t1").map(|p| p.role), Some(Role::Viewer));
        assert_eq!(set.authenticate("t3"), None);
        assert_eq!(set.authenticate(""), None);
    }

    #[test]
    fn refuses_bad_entries_naming_them() {
        let err = TokenSet::parse("tokens:\n  - name: a\n    role: viewer\n    sha256: abc\n")
            .err()
            .unwrap();
        assert!(err.contains("tokens[0].sha256"), "{err}");
        let err = TokenSet::parse("tokens:\n  - name: a\n    role: admin\n    sha256: abc\n")
            .err()
            .unwrap();
        assert!(err.contains("admin"), "{err}");
        let dup = file(&[("a", "viewer", "x"), ("a", "viewer", "y")]);
        assert!(TokenSet::parse(&dup).err().unwrap().contains("used twice"));
    }

    #[test]
    fn generated_tokens_are_unique_and_long() {
        let a = generate_token();
        assert_ne!(a, generate_token());
        assert!(a.len() >= 64);
    }
}
