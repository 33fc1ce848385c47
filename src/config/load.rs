//! Reading the file and collecting shape errors section by section.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

use super::model::*;
use super::validate::validate;

/// One problem in the configuration, with the path of the key it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path with list indices, e.g. `dns.records[1].set_identifiers`; empty for the file as
    /// a whole.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a configuration file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors {
    /// The file, when the configuration came from one.
    pub file: Option<PathBuf>,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        match &self.file {
            Some(file) => write!(f, "{}: {n} error(s)", file.display())?,
            None => write!(f, "{n} configuration error(s)")?,
        }
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Reads and validates a configuration file. Relative paths inside it (the tokens file, the
/// state directory, secret files) are resolved against the file's own directory, so the same
/// file works whatever the working directory of the process.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let fail = |message: String| ConfigErrors {
        file: Some(path.to_owned()),
        errors: vec![ConfigError::new("", message)],
    };
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let (line, column) = line_column(&bytes[..at]);
        fail(format!(
            "the file is not UTF-8: byte {:#04x} at line {line}, column {column} (offset {at})",
            bytes[at]
        ))
    })?;
    let mut config = parse_str(&text).map_err(|mut e| {
        e.file = Some(path.to_owned());
        e
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    resolve_relative_paths(&mut config, base);
    Ok(config)
}

/// The 1-based line and column just past `before` (columns count characters).
fn line_column(before: &[u8]) -> (usize, usize) {
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let last_line = match before.iter().rposition(|b| *b == b'\n') {
        Some(i) => &before[i + 1..],
        None => before,
    };
    let column = String::from_utf8_lossy(last_line).chars().count() + 1;
    (line, column)
}

fn resolve_relative_paths(config: &mut Config, base: &Path) {
    let resolve = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    if let Some(tokens) = config.server.tokens_file.as_mut() {
        resolve(tokens);
    }
    resolve(&mut config.state.dir);
    let resolve_connect = |c: &mut super::ClusterConnect| {
        if let Some(eks) = c.eks.as_mut() {
            resolve(&mut eks.ca_file);
        }
        if let Some(p) = c.kubeconfig.as_mut().and_then(|k| k.path.as_mut()) {
            resolve(p);
        }
        if let Some(t) = c.token.as_mut() {
            if let Some(p) = t.ca_file.as_mut() {
                resolve(p);
            }
            if let super::SecretRef::File(p) = &mut t.token {
                resolve(p);
            }
        }
    };
    if let Some(gitops) = config.gitops.as_mut() {
        for cluster in &mut gitops.clusters {
            resolve_connect(&mut cluster.connect);
        }
    }
    if let Some(k) = config.state.kubernetes.as_mut() {
        resolve_connect(&mut k.connect);
    }
    for aurora in &mut config.replication.aurora {
        if let Some(hb) = aurora.heartbeat.as_mut() {
            if let super::SecretRef::File(p) = &mut hb.password {
                resolve(p);
            }
        }
    }
}

/// The top-level keys, in the order they are documented.
const SECTIONS: &[&str] = &[
    "pair",
    "regions",
    "server",
    "log",
    "state",
    "aws",
    "health",
    "policy",
    "dns",
    "replication",
    "cognito",
    "gitops",
    "topology",
    "failover",
    "evaluation",
];

/// Parses and validates configuration text.
pub fn parse_str(text: &str) -> Result<Config, ConfigErrors> {
    let fail = |errors| ConfigErrors { file: None, errors };
    let root =
        read_one_document(text).map_err(|message| fail(vec![ConfigError::new("", message)]))?;
    let mut tags = secondary_tags(text);
    find_tags(&root, String::new(), &mut tags);
    if !tags.is_empty() {
        return Err(fail(tags));
    }
    let map = match root {
        Value::Mapping(map) => map,
        Value::Null => Mapping::new(),
        _ => {
            return Err(fail(vec![ConfigError::new(
                "",
                "the configuration must be a mapping of sections",
            )]))
        }
    };

    let mut errors = Vec::new();
    for key in map.keys() {
        match key.as_str() {
            Some(k) if SECTIONS.contains(&k) => {}
            Some(k) => errors.push(ConfigError::new(
                k,
                format!("unknown key (expected one of: {})", SECTIONS.join(", ")),
            )),
            None => errors.push(ConfigError::new(
                "",
                format!("section names must be strings, found {}", key_text(key)),
            )),
        }
    }

    let mut reader = SectionReader {
        text,
        map: &map,
        errors: &mut errors,
        failed: Vec::new(),
    };
    let pair: Option<String> = reader.required("pair");
    let regions: Option<Vec<RegionConfig>> = reader.required("regions");
    let server: Option<ServerConfig> = reader.optional("server");
    let log: Option<LogConfig> = reader.optional("log");
    let state: Option<StateConfig> = reader.optional("state");
    let aws: Option<AwsConfig> = reader.optional("aws");
    let health: Option<HealthConfig> = reader.optional("health");
    let policy: Option<PolicyConfig> = reader.optional("policy");
    let dns: Option<Option<DnsConfig>> = reader.nullable("dns");
    let replication: Option<ReplicationConfig> = reader.optional("replication");
    let cognito: Option<Option<CognitoConfig>> = reader.nullable("cognito");
    let gitops: Option<Option<GitOpsConfig>> = reader.nullable("gitops");
    let failover: Option<FailoverConfig> = reader.optional("failover");
    let evaluation: Option<EvaluationConfig> = reader.optional("evaluation");
    let topology: Option<TopologyConfig> = reader.optional("topology");

    // A section whose shape is wrong is replaced by its defaults for the meaning checks, and
    // their errors about that section are dropped: the reader sees the shape error for it and
    // every meaning error elsewhere, in one pass. Without both regions nothing can be checked.
    let failed: Vec<&str> = reader.failed.clone();
    let config = match (pair, regions) {
        (Some(pair), Some(regions)) => Some(Config {
            pair,
            regions,
            server: server.unwrap_or_default(),
            log: log.unwrap_or_default(),
            state: state.unwrap_or_default(),
            aws: aws.unwrap_or_default(),
            health: health.unwrap_or_default(),
            policy: policy.unwrap_or_default(),
            dns: dns.flatten(),
            replication: replication.unwrap_or_default(),
            cognito: cognito.flatten(),
            gitops: gitops.flatten(),
            failover: failover.unwrap_or_default(),
            evaluation: evaluation.unwrap_or_default(),
            topology: topology.unwrap_or_default(),
        }),
        _ => None,
    };

    if let Some(config) = &config {
        let mut meaning = Vec::new();
        validate(config, &mut meaning);
        errors.extend(meaning.into_iter().filter(|e| {
            !failed
                .iter()
                .any(|section| e.path == *section || e.path.starts_with(&format!("{section}.")))
        }));
    }
    match config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => Err(fail(errors)),
    }
}

/// The file's one YAML document, or why it cannot be read (with the line and column where
/// known).
fn read_one_document(text: &str) -> Result<Value, String> {
    let located = |e: &serde_yaml_ng::Error| {
        let message = clean_message(&e.to_string());
        match e.location() {
            Some(l) => format!(
                "invalid YAML (line {}, column {}): {message}",
                l.line(),
                l.column()
            ),
            None => format!("invalid YAML: {message}"),
        }
    };
    let mut documents = serde_yaml_ng::Deserializer::from_str(text);
    let root = match documents.next() {
        None => Value::Null,
        Some(first) => Value::deserialize(first).map_err(|e| {
            if e.to_string().contains("repetition limit exceeded") {
                let alias = first_alias(text)
                    .map(|(l, c)| format!(" (the first alias is at line {l}, column {c})"))
                    .unwrap_or_default();
                format!(
                    "invalid YAML: its anchors and aliases expand to too many nodes{alias}; write the values out"
                )
            } else {
                located(&e)
            }
        })?,
    };
    if let Some(second) = documents.next() {
        // Reading the next document also reports a syntax error in it.
        let at = second_document_line(text)
            .map(|l| format!(" (the second starts at line {l})"))
            .unwrap_or_default();
        if let Err(e) = Value::deserialize(second) {
            if e.location().is_some() {
                return Err(located(&e));
            }
        }
        return Err(format!(
            "the file holds more than one YAML document{at}; failoverd reads exactly one"
        ));
    }
    Ok(root)
}

/// The line of the `---` that starts a second document.
fn second_document_line(text: &str) -> Option<usize> {
    let mut content = false;
    for (i, line) in text.lines().enumerate() {
        let marker = line == "---" || line.starts_with("--- ") || line == "...";
        if marker && content {
            return Some(i + 1);
        }
        let t = line.trim_start();
        if !marker && !t.is_empty() && !t.starts_with('#') && !t.starts_with('%') {
            content = true;
        }
    }
    None
}

/// Line and column of the first `*alias` outside a comment.
fn first_alias(text: &str) -> Option<(usize, usize)> {
    for (i, line) in text.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or(line);
        let mut prev = ' ';
        for (j, ch) in code.chars().enumerate() {
            if ch == '*' && matches!(prev, ' ' | '[' | ',' | '{' | ':' | '-') {
                return Some((i + 1, j + 1));
            }
            prev = ch;
        }
    }
    None
}

/// The `!!` tags (`!!binary`, `!!timestamp`…) where a node starts: the parser drops those it
/// does not resolve without a trace, so they are found in the text, with their line and column.
fn secondary_tags(text: &str) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut prev = ' ';
        let mut in_quote: Option<char> = None;
        let chars: Vec<char> = line.chars().collect();
        for (j, &ch) in chars.iter().enumerate() {
            match in_quote {
                Some(q) if ch == q => in_quote = None,
                Some(_) => {}
                None if ch == '#' && (j == 0 || chars[j - 1] == ' ') => break,
                None if ch == '\'' || ch == '"' => in_quote = Some(ch),
                None if ch == '!'
                    && chars.get(j + 1) == Some(&'!')
                    && matches!(prev, ' ' | ':' | '-' | '[' | '{' | ',')
                    && (j == 0 || matches!(chars[j - 1], ' ' | '[' | '{' | ',')) =>
                {
                    let tag: String = chars[j..]
                        .iter()
                        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}'))
                        .collect();
                    out.push(ConfigError::new(
                        "",
                        format!(
                            "YAML tags are not supported (found {tag} at line {}, column {}): write a plain value",
                            i + 1,
                            j + 1
                        ),
                    ));
                }
                None => {}
            }
            if !ch.is_whitespace() {
                prev = ch;
            }
        }
    }
    out
}

/// A mapping key as the file writes it (`1`, `true`, a string as is).
fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim_end()
            .to_owned(),
    }
}

/// Every YAML tag (`!!binary`, `!Ref`): failoverd reads plain values only, and a tag dropped
/// silently would change what the file says.
fn find_tags(value: &Value, path: String, out: &mut Vec<ConfigError>) {
    match value {
        Value::Tagged(t) => out.push(ConfigError::new(
            path,
            format!(
                "YAML tags are not supported (found {}): write a plain value",
                t.tag
            ),
        )),
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                find_tags(item, format!("{path}[{i}]"), out);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map {
                let key = key_text(k);
                if let Value::Tagged(t) = k {
                    out.push(ConfigError::new(
                        path.clone(),
                        format!("YAML tags are not supported (found {} on a key)", t.tag),
                    ));
                }
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                find_tags(v, child, out);
            }
        }
        _ => {}
    }
}

/// Where, in the original text, section `key` fails to deserialise as `T`: the same section
/// read straight from the text, so the parser's marks are the file's.
fn locate_shape_error<T: DeserializeOwned>(text: &str, key: &str) -> Option<(usize, usize)> {
    struct Section<'k, T> {
        key: &'k str,
        _t: std::marker::PhantomData<T>,
    }
    impl<'de, T: DeserializeOwned> serde::de::Visitor<'de> for Section<'_, T> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping of sections")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(k) = map.next_key::<Value>()? {
                if k.as_str() == Some(self.key) {
                    map.next_value::<T>()?;
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let section = Section::<T> {
        key,
        _t: std::marker::PhantomData,
    };
    match serde::Deserializer::deserialize_map(de, section) {
        Ok(()) => None,
        Err(e) => e.location().map(|l| (l.line(), l.column())),
    }
}

struct SectionReader<'a> {
    /// The file's text, to locate a shape error.
    text: &'a str,
    map: &'a Mapping,
    errors: &'a mut Vec<ConfigError>,
    /// Sections whose shape was wrong.
    failed: Vec<&'static str>,
}

impl SectionReader<'_> {
    /// A section that must be present.
    fn required<T: DeserializeOwned>(&mut self, key: &'static str) -> Option<T> {
        match self.map.get(key) {
            None | Some(Value::Null) => {
                self.errors.push(ConfigError::new(key, "required"));
                None
            }
            Some(v) => self.read(key, v),
        }
    }

    /// A section with defaults for everything; absent means all defaults.
    fn optional<T: DeserializeOwned + Default>(&mut self, key: &'static str) -> Option<T> {
        match self.map.get(key) {
            None | Some(Value::Null) => Some(T::default()),
            Some(v) => self.read(key, v),
        }
    }

    /// A section that turns a feature on by being present.
    fn nullable<T: DeserializeOwned>(&mut self, key: &'static str) -> Option<Option<T>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Some(None),
            Some(v) => self.read(key, v).map(Some),
        }
    }

    fn read<T: DeserializeOwned>(&mut self, key: &'static str, value: &Value) -> Option<T> {
        let mut unknown = Vec::new();
        let mut track = serde_path_to_error::Track::new();
        let result: Result<T, _> = serde_ignored::deserialize(
            serde_path_to_error::Deserializer::new(value.clone(), &mut track),
            |path| unknown.push(ignored_path(key, &path)),
        );
        for path in unknown {
            self.errors.push(ConfigError::new(path, "unknown key"));
        }
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.failed.push(key);
                let path = join_path(key, &track.path());
                let at = locate_shape_error::<T>(self.text, key)
                    .map(|(l, c)| format!(" (line {l}, column {c})"))
                    .unwrap_or_default();
                self.errors.push(ConfigError::new(
                    path,
                    format!("{}{at}", clean_message(&e.to_string())),
                ));
                None
            }
        }
    }
}

/// `serde_ignored`'s path, written the way this crate writes paths (`a.b[1].c`).
fn ignored_path(section: &str, path: &serde_ignored::Path<'_>) -> String {
    fn walk(path: &serde_ignored::Path<'_>, out: &mut String) {
        use serde_ignored::Path as P;
        match path {
            P::Root => {}
            P::Seq { parent, index } => {
                walk(parent, out);
                out.push_str(&format!("[{index}]"));
            }
            P::Map { parent, key } => {
                walk(parent, out);
                out.push('.');
                out.push_str(key);
            }
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                walk(parent, out)
            }
        }
    }
    let mut out = section.to_owned();
    walk(path, &mut out);
    out
}

/// `serde_path_to_error`'s path under a section name.
fn join_path(section: &str, path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = section.to_owned();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                out.push('.');
                out.push_str(key);
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// serde_yaml appends "at line X column Y" of the re-serialised value, which is meaningless to the
/// reader of the original file; the path says where instead.
fn clean_message(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}
