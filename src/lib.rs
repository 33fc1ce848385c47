//! failoverd keeps a cold AWS region ready to take over from the hot one, and performs the takeover.
//!
//! The binary (`src/main.rs`) only parses the command line and calls into this library. Modules:
//! configuration (`config`), the HTTP API (`api`), telemetry, the durable run engine (`engine`), the
//! plans built on it (`plans`), the region pair and the recorded active region (`topology`), the
//! domain modules, and the AWS adapters (`aws`) implementing the ports that the domain modules
//! define.
//!
//! Ports and adapters: a domain module (`cognito`, `dns`, `health`, `replication`, `aurora`,
//! `policy`, `engine`, `plans`, `topology`) never imports `aws` or `daemon`. Port calls speak the
//! neutral vocabulary of [`port`]; the daemon, the composition root, is the only module that knows
//! both sides. The test at the end of this file keeps it that way.
#![forbid(unsafe_code)]

// Entry points.
pub mod cli;
pub mod client;
pub mod daemon;
pub mod shutdown;

// Mechanisms shared by several modules.
pub mod durable_file;
pub mod error_chain;
pub mod token_bucket;

// Configuration, the HTTP API, and what the process reports about itself.
pub mod api;
pub mod config;
pub mod status;
pub mod telemetry;

// The durable run engine and the plans it runs.
pub mod engine;
pub mod plans;

// Domain modules (pure decisions and their ports), the vocabulary of port calls, and the AWS
// adapters.
pub mod aurora;
pub mod aws;
pub mod cognito;
pub mod dns;
pub mod gitops;
pub mod health;
pub mod kube;
pub mod policy;
pub mod port;
pub mod replication;
pub mod topology;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Domain modules: they define ports and decisions, and know no adapter. `true` marks the ones
    /// that must exist (as `src/<name>.rs` or `src/<name>/`), so a rename cannot empty the check.
    const DOMAIN_MODULES: &[(&str, bool)] = &[
        ("cognito", true),
        ("dns", true),
        ("health", true),
        ("replication", true),
        ("policy", true),
        ("engine", true),
        ("plans", true),
        ("aurora", true),
        ("gitops", true),
        ("topology", true),
    ];

    /// What a domain module may not import: the adapters and the composition root.
    const FORBIDDEN: &[&str] = &["aws", "daemon", "kube"];

    fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            entries.sort();
            for entry in entries {
                rust_files(&entry, out);
            }
        } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
            out.push(path.to_owned());
        }
    }

    /// The source without `//` comments (doc comments may name the adapters).
    fn code_only(source: &str) -> String {
        source
            .lines()
            .map(|line| line.find("//").map_or(line, |at| &line[..at]))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The first segment of every path that starts with `crate::`, braces expanded one level
    /// (`use crate::{aws, config::X}` names `aws` and `config`).
    fn crate_roots(code: &str) -> Vec<String> {
        let mut roots = Vec::new();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let rest_trimmed = rest.trim_start();
            if let Some(group) = rest_trimmed.strip_prefix('{') {
                let mut depth = 1;
                let mut item = String::new();
                let mut at_item_start = true;
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                    if depth == 1 && c == ',' {
                        roots.extend((!item.is_empty()).then(|| std::mem::take(&mut item)));
                        at_item_start = true;
                    } else if at_item_start {
                        if c.is_alphanumeric() || c == '_' {
                            item.push(c);
                        } else if !item.is_empty() {
                            roots.push(std::mem::take(&mut item));
                            at_item_start = false;
                        }
                    }
                }
                roots.extend((!item.is_empty()).then_some(item));
            } else {
                roots.push(
                    rest_trimmed
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect(),
                );
            }
        }
        roots
    }

    #[test]
    fn crate_roots_sees_plain_and_grouped_paths() {
        let code = "use crate::aws::Result;\nuse crate::{\n    config::X,\n    daemon,\n};\nlet e: crate::port::Error;";
        assert_eq!(crate_roots(code), ["aws", "config", "daemon", "port"]);
        assert!(crate_roots(&code_only("//! implemented by `crate::aws`")).is_empty());
    }

    #[test]
    fn domain_modules_import_no_adapter_and_not_the_daemon() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        for (module, required) in DOMAIN_MODULES {
            let dir = src.join(module);
            let file = src.join(format!("{module}.rs"));
            let before = files.len();
            rust_files(&dir, &mut files);
            rust_files(&file, &mut files);
            assert!(
                !required || files.len() > before,
                "domain module {module} not found under {}",
                src.display()
            );
        }
        let mut violations = Vec::new();
        for file in &files {
            let source =
                std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            for root in crate_roots(&code_only(&source)) {
                if FORBIDDEN.contains(&root.as_str()) {
                    violations.push(format!("{} imports crate::{root}", file.display()));
                }
            }
        }
        assert!(
            violations.is_empty(),
            "domain modules must depend on ports, not adapters (see DESIGN.md, \"Ports and adapters\"):\n{}",
            violations.join("\n")
        );
    }

    /// The non-test code of a file: up to its `#[cfg(test)] mod tests` (test code may import
    /// whatever it exercises).
    fn without_tests(source: &str) -> &str {
        source
            .find("#[cfg(test)]\nmod tests")
            .map_or(source, |at| &source[..at])
    }

    #[test]
    fn top_level_modules_import_each_other_without_a_cycle() {
        use std::collections::{BTreeMap, BTreeSet};
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let entries = std::fs::read_dir(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if stem == "lib" || stem == "main" || stem.starts_with('.') {
                continue;
            }
            let mut files = Vec::new();
            rust_files(&path, &mut files);
            let roots = imports.entry(stem.to_owned()).or_default();
            for file in files.iter().filter(|f| !f.ends_with("tests.rs")) {
                let source = std::fs::read_to_string(file)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                roots.extend(
                    crate_roots(&code_only(without_tests(&source)))
                        .into_iter()
                        .filter(|r| r != stem),
                );
            }
        }
        assert!(
            imports.len() > 10,
            "modules not found under {}",
            src.display()
        );
        // Depth-first search; a module met again on the current path closes a cycle.
        fn visit(
            module: &str,
            imports: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(at) = path.iter().position(|m| m == module) {
                let mut cycle = path[at..].to_vec();
                cycle.push(module.to_owned());
                return Some(cycle);
            }
            if !done.insert(module.to_owned()) {
                return None;
            }
            path.push(module.to_owned());
            for next in imports.get(module).into_iter().flatten() {
                if let Some(cycle) = visit(next, imports, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            None
        }
        let mut done = BTreeSet::new();
        for module in imports.keys() {
            if let Some(cycle) = visit(module, &imports, &mut Vec::new(), &mut done) {
                panic!(
                    "modules import each other in a cycle: {}",
                    cycle.join(" -> ")
                );
            }
        }
    }
}
