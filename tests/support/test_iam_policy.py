"""deploy/iam/failoverd-policy.json grants exactly the AWS actions failoverd's code calls.

Run:

    .venv/bin/python -m pytest -q tests/support/test_iam_policy.py

The actions the code calls are derived, not listed here: `cargo metadata` locates every
`aws-sdk-*` crate, whose operations are the directory names under its `src/operation/`; the
crate's modules are walked from its roots (tests/support/rust_scan.py blanks comments and
literals and drops `#[cfg(test)]` items), and every `<client>.<operation>()` on a name bound to a
crate's `Client` is one call. Needs the cargo registry populated (`make test` builds first).

Every check runs twice: on the real files, and on deliberately broken variants, so each one is
shown to be able to fail.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import rust_scan  # noqa: E402

POLICY = ROOT / "deploy" / "iam" / "failoverd-policy.json"
README = ROOT / "deploy" / "iam" / "README.md"

# The IAM service prefix of each SDK crate (the Rust crate name). A crate used in src/ that is not
# here fails the test: add it, with the prefix from the Service Authorization Reference.
IAM_PREFIX = {
    "aws_sdk_backup": "backup",
    "aws_sdk_cloudwatch": "cloudwatch",
    "aws_sdk_cloudwatchlogs": "logs",
    "aws_sdk_cognitoidentityprovider": "cognito-idp",
    "aws_sdk_dynamodb": "dynamodb",
    "aws_sdk_eks": "eks",
    "aws_sdk_kms": "kms",
    "aws_sdk_rds": "rds",
    "aws_sdk_route53": "route53",
    "aws_sdk_s3": "s3",
    "aws_sdk_secretsmanager": "secretsmanager",
    "aws_sdk_sns": "sns",
    "aws_sdk_sqs": "sqs",
    "aws_sdk_ssm": "ssm",
    "aws_sdk_sso": "sso",
    "aws_sdk_ssooidc": "sso-oauth",
    "aws_sdk_sts": "sts",
}

# The Sid of a statement starts with its service's name: one service per statement.
SID_PREFIX = {
    "backup": "Backup",
    "cloudwatch": "CloudWatch",
    "cognito-idp": "Cognito",
    "rds": "Rds",
    "route53": "Route53",
    "sts": "Sts",
}

# Requests the code signs itself (presigned URLs, src/kube/eks_token.rs) whose actions IAM never
# denies: they need no statement.
NO_PERMISSION_NEEDED = {
    "sts:getcalleridentity": "always allowed, even against an explicit deny (the EKS token)",
}

# Actions that IAM lists with a resource type, but whose calls by failoverd name none of that
# type, so `*` is the only resource they are authorized against.
WILDCARD_ALSO_OK = {
    "cloudwatch:getmetricdata": "only the optional `dataset` type; the lag query names no dataset",
    "cloudwatch:putmetricdata": "only the optional `dataset` type; the signal names no dataset",
}

# Methods that share an SDK operation's name, take no arguments and are not called on an SDK
# client, in a module that uses the SDK crate: (module, method) -> why it is not an SDK call.
# Empty today: every such call in src/aws is on `self.client` (the adapters' domain methods that
# share names with operations take arguments, e.g. `self.get_health_check(id)` in route53.rs, or
# live in modules that do not use the SDK, e.g. `GlobalDatabaseApi::describe_db_clusters()`
# called in src/replication). A new one fails `test_every_operation_name_call_is_attributed`
# until it is listed here with its reason or its client binding is recognized.
NOT_SDK_CALLS: dict[tuple[str, str], str] = {}

MANAGED_POLICY_MAX_CHARS = 6144  # without whitespace, IAM's limit for a managed policy


def iam_key(action: str) -> str:
    """IAM action names are case-insensitive; SDK operations are their snake_case."""
    service, _, name = action.partition(":")
    return f"{service.lower()}:{name.replace('_', '').lower()}"


# -- what the code calls -------------------------------------------------------------------------

@functools.cache
def cargo_metadata() -> dict[str, Any]:
    # `--filter-platform`: the registry holds only the host's dependencies (what `cargo build`
    # fetched), and without it `--offline` fails on a Windows-only crate that was never fetched.
    try:
        host = re.search(r"^host: (\S+)$", subprocess.run(
            ["rustc", "-vV"], capture_output=True, text=True, check=True).stdout, re.M).group(1)
        out = subprocess.run(
            ["cargo", "metadata", "--offline", "--format-version", "1", "--filter-platform", host],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.fail(f"cargo/rustc are needed to derive the SDK operations: {e}")
    if out.returncode != 0:
        pytest.fail(f"cargo metadata --offline failed (build once to fill the registry):\n{out.stderr}")
    return json.loads(out.stdout)


def root_package(meta: dict[str, Any]) -> dict[str, Any]:
    root_id = meta["resolve"]["root"]
    return next(p for p in meta["packages"] if p["id"] == root_id)


def sdk_operations(meta: dict[str, Any]) -> dict[str, set[str]]:
    """Rust crate name -> the snake_case names of its operations."""
    ops: dict[str, set[str]] = {}
    for package in meta["packages"]:
        if not package["name"].startswith("aws-sdk-"):
            continue
        crate = next(t["name"] for t in package["targets"] if "lib" in t["kind"]).replace("-", "_")
        operation_dir = Path(package["manifest_path"]).parent / "src" / "operation"
        ops[crate] = {d.name for d in operation_dir.iterdir() if d.is_dir()}
        assert ops[crate], f"{package['name']}: no operations under {operation_dir}"
    return ops


def shipped_cfg(meta: dict[str, Any]) -> rust_scan.Cfg:
    """The cfg of the shipped binary: a Linux build with the default features."""
    features = root_package(meta)["features"]
    on: set[str] = set()
    todo = list(features.get("default", []))
    while todo:
        f = todo.pop()
        if f not in on and not f.startswith("dep:") and "/" not in f:
            on.add(f)
            todo.extend(features.get(f, []))
    return rust_scan.Cfg(features=frozenset(on))


def crate_roots(meta: dict[str, Any]) -> list[Path]:
    """The lib and bin targets: what ships (tests, benches and examples do not)."""
    return [Path(t["src_path"]) for t in root_package(meta)["targets"]
            if set(t["kind"]) & {"lib", "bin"}]


@functools.cache
def shipped_modules() -> list[rust_scan.Module]:
    meta = cargo_metadata()
    return rust_scan.module_files(crate_roots(meta), shipped_cfg(meta))


@functools.cache
def called_sdk_operations() -> tuple[frozenset[rust_scan.Call], tuple[str, ...]]:
    calls, unattributed = rust_scan.sdk_calls(
        shipped_modules(), sdk_operations(cargo_metadata()), NOT_SDK_CALLS, ROOT)
    return frozenset(calls), tuple(unattributed)


def called_actions(calls: frozenset[rust_scan.Call]) -> dict[str, list[str]]:
    """IAM action key -> where it is called."""
    actions: dict[str, list[str]] = {}
    for call in sorted(calls, key=lambda c: (c.path, c.line)):
        prefix = IAM_PREFIX.get(call.crate)
        if prefix is None:
            pytest.fail(f"{call.crate} is used in {call.path}: add its IAM service prefix to IAM_PREFIX")
        actions.setdefault(iam_key(f"{prefix}:{call.operation}"), []).append(
            f"{call.path.relative_to(ROOT)}:{call.line} .{call.operation}()")
    return actions


def presigned_actions(modules: list[rust_scan.Module]) -> tuple[dict[str, str], list[str]]:
    """Requests the code signs with aws_sigv4 itself: IAM action key -> module, and the modules
    that sign but whose action could not be read."""
    found: dict[str, str] = {}
    unknown: list[str] = []
    for module in modules:
        if not re.search(r"\baws_sigv4\b", module.code):
            continue
        rel = module.path.relative_to(ROOT).as_posix()
        services = set(re.findall(r'\.name\(\s*"([a-z0-9-]+)"\s*\)', module.strings))
        actions = set(re.findall(r"[?&]Action=([A-Za-z0-9]+)", module.strings))
        if len(services) != 1 or not actions:
            unknown.append(f"{rel}: signs requests, service {sorted(services)}, actions {sorted(actions)}")
            continue
        (service,) = services
        for action in actions:
            found[iam_key(f"{service}:{action}")] = rel
    return found, unknown


# -- the policy ----------------------------------------------------------------------------------

def load_policy() -> dict[str, Any]:
    return json.loads(POLICY.read_text())


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted_actions(policy: dict[str, Any]) -> dict[str, str]:
    """IAM action key -> the Sid granting it."""
    return {iam_key(a): s.get("Sid", "?") for s in policy.get("Statement", [])
            for a in as_list(s.get("Action", []))}


def action_problems(called: dict[str, list[str]], granted: dict[str, str]) -> list[str]:
    missing = sorted(set(called) - set(granted))
    unused = sorted(set(granted) - set(called))
    problems = []
    if missing:
        problems.append("the code calls actions the policy lacks:\n" + "\n".join(
            f"  {a}  ({'; '.join(called[a])})" for a in missing))
    if unused:
        problems.append("the policy grants actions no code calls:\n" + "\n".join(
            f"  {a}  (statement {granted[a]})" for a in unused))
    return problems


ACTION_SHAPE = re.compile(r"[a-z0-9-]+:[A-Za-z0-9]+")


def shape_problems(policy: dict[str, Any]) -> list[str]:
    problems = []
    if policy.get("Version") != "2012-10-17":
        problems.append(f"Version is {policy.get('Version')!r}, not '2012-10-17'")
    if set(policy) - {"Version", "Statement"}:
        problems.append(f"unexpected top-level keys {sorted(set(policy) - {'Version', 'Statement'})}")
    statements = policy.get("Statement")
    if not isinstance(statements, list) or not statements:
        return problems + ["Statement must be a non-empty list"]
    sids = [s.get("Sid") for s in statements]
    if len(set(sids)) != len(sids):
        problems.append(f"duplicate Sids: {sorted({s for s in sids if sids.count(s) > 1}, key=str)}")
    for i, s in enumerate(statements):
        sid = s.get("Sid")
        where = f"statement {i} ({sid})"
        for key in ("Sid", "Effect", "Action", "Resource"):
            if key not in s:
                problems.append(f"{where}: no {key}")
        forbidden = set(s) & {"NotAction", "NotResource", "Principal", "NotPrincipal"}
        if forbidden:
            problems.append(f"{where}: {sorted(forbidden)} not allowed in this identity policy")
        if unexpected := set(s) - {"Sid", "Effect", "Action", "Resource", "Condition"} - forbidden:
            problems.append(f"{where}: unexpected keys {sorted(unexpected)}")
        if sid is not None and not (isinstance(sid, str) and re.fullmatch(r"[A-Za-z0-9]+", sid)):
            problems.append(f"{where}: Sid must be alphanumeric")
        if s.get("Effect", "Allow") != "Allow":
            problems.append(f"{where}: Effect {s.get('Effect')!r}: the policy only allows")
        actions = as_list(s.get("Action", []))
        services = set()
        for action in actions:
            if not isinstance(action, str) or not ACTION_SHAPE.fullmatch(action):
                problems.append(f"{where}: action {action!r} is not service:Name (no wildcards)")
            else:
                services.add(action.split(":")[0])
        if len(services) > 1:
            problems.append(f"{where}: mixes services {sorted(services)}; one statement per service")
        if len(services) == 1 and isinstance(sid, str):
            prefix = SID_PREFIX.get(next(iter(services)))
            if prefix is None or not sid.startswith(prefix):
                problems.append(f"{where}: the Sid of a {next(iter(services))} statement starts with {prefix!r}")
        if len(set(map(iam_key, filter(lambda a: isinstance(a, str), actions)))) != len(actions):
            problems.append(f"{where}: an action is listed twice")
        resources = as_list(s.get("Resource", []))
        if not resources or not all(isinstance(r, str) and r for r in resources):
            problems.append(f"{where}: Resource must be non-empty strings")
    return problems


PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# `| `${NAME}` | ...` rows of the README's placeholder table.
DOCUMENTED = re.compile(r"^\|\s*`\$\{([A-Z][A-Z0-9_]*)\}`\s*\|", re.M)


def placeholder_problems(policy_text: str, readme_text: str) -> list[str]:
    used = set(PLACEHOLDER.findall(policy_text))
    documented = set(DOCUMENTED.findall(readme_text))
    problems = []
    if bad := sorted(u for u in used if not re.fullmatch(r"[A-Z][A-Z0-9_]*", u)):
        problems.append(f"placeholders must be UPPER_SNAKE (IAM policy variables look like ${{aws:x}}): {bad}")
    if missing := sorted(used - documented):
        problems.append(f"placeholders used in the policy but not in deploy/iam/README.md's table: {missing}")
    if stale := sorted(documented - used):
        problems.append(f"placeholders documented in deploy/iam/README.md but not used: {stale}")
    return problems


SAMPLE = {"PARTITION": "aws", "ACCOUNT_ID": "123456789012", "HOT_REGION": "us-east-1",
          "COLD_REGION": "us-west-2"}


def render(policy_text: str) -> str:
    """The policy with sample values: region names for *_REGION, an id-like value otherwise."""
    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in SAMPLE:
            return SAMPLE[name]
        return "eu-central-1" if name.endswith("_REGION") else "sample-" + name.lower().replace("_", "-")
    return PLACEHOLDER.sub(value, policy_text)


@functools.cache
def authorization_reference() -> dict[str, Any]:
    """IAM's actions and resource types per service (the Service Authorization Reference), as
    shipped by cfn-lint (pinned in tests/support/requirements.txt)."""
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("cfn-lint is not installed: run scripts/install-test-deps.sh")
    path = Path(spec.submodule_search_locations[0]) / "data" / "AdditionalSpecs" / "Policies.json"
    return json.loads(path.read_text())


def arn_regex(arn_format: str) -> re.Pattern[str]:
    parts = re.split(r"(\$\{\w+\})", arn_format)
    out = []
    for part in parts:
        if part == "${Partition}":
            out.append(r"aws(?:-[a-z]+)*")
        elif part == "${Region}":
            out.append(r"[a-z]{2}(?:-[a-z]+)+-\d")
        elif part == "${Account}":
            out.append(r"\d{12}")
        elif part.startswith("${"):
            out.append(r"[^:]+")
        else:
            out.append(re.escape(part).replace(r"\.\*", ".*"))
    return re.compile("".join(out))


def resource_problems(policy: dict[str, Any], sar: dict[str, Any]) -> list[str]:
    """Every action exists in IAM; `*` only for actions without resource types (or listed in
    WILDCARD_ALSO_OK), and then narrowed by a condition; every ARN is of a resource type of each
    action of its statement, with wildcards only in the resource part."""
    problems = []
    for s in policy.get("Statement", []):
        where = f"statement {s.get('Sid')}"
        resources = as_list(s.get("Resource", []))
        for action in as_list(s.get("Action", [])):
            if not isinstance(action, str) or ":" not in action:
                continue
            service, name = iam_key(action).split(":")
            entry = sar.get(service, {}).get("Actions", {}).get(name)
            if entry is None:
                problems.append(f"{where}: {action} is not an IAM action")
                continue
            types = [t.lower() for t in entry.get("Resources", [])]
            formats = {t: sar[service]["Resources"][t]["ARNFormats"]
                       for t in types if t in sar[service].get("Resources", {})}
            for resource in resources:
                if resource == "*":
                    if types and iam_key(action) not in WILDCARD_ALSO_OK:
                        problems.append(f"{where}: {action} supports resource types {types}; "
                                        "scope it instead of Resource *")
                    continue
                if not types:
                    problems.append(f"{where}: {action} has no resource types; its Resource is '*'")
                elif not any(arn_regex(f).fullmatch(resource) for fs in formats.values() for f in fs):
                    problems.append(f"{where}: {resource} is none of {action}'s resource types {types}")
        for resource in resources:
            if resource != "*":
                head = resource.split(":", 5)[:5]
                if len(head) < 5 or any("*" in part or "?" in part for part in head):
                    problems.append(f"{where}: {resource}: wildcards only in the resource part of an ARN")
        if "*" in resources and not s.get("Condition"):
            problems.append(f"{where}: Resource * without a Condition narrowing it")
    return problems


# -- the tests: the real files -------------------------------------------------------------------

def test_the_code_calls_sdk_operations_at_all():
    calls, _ = called_sdk_operations()
    crates = {c.crate for c in calls}
    # A scan that finds nothing would make the comparison below vacuous.
    assert {"aws_sdk_rds", "aws_sdk_route53", "aws_sdk_cloudwatch",
            "aws_sdk_cognitoidentityprovider", "aws_sdk_backup"} <= crates, crates


def test_every_operation_name_call_is_attributed():
    _, unattributed = called_sdk_operations()
    assert not unattributed, "\n".join(unattributed)


def test_policy_grants_exactly_the_called_actions():
    calls, _ = called_sdk_operations()
    problems = action_problems(called_actions(calls), granted_actions(load_policy()))
    assert not problems, "\n".join(problems)


def test_presigned_requests_need_no_statement():
    found, unknown = presigned_actions(shipped_modules())
    assert not unknown, "\n".join(unknown)
    assert found, "src/kube/eks_token.rs presigns sts:GetCallerIdentity; the scan found no presigned request"
    granted = granted_actions(load_policy())
    for action, module in found.items():
        assert action in NO_PERMISSION_NEEDED or action in granted, (
            f"{module} presigns {action}: grant it, or add it to NO_PERMISSION_NEEDED if IAM never denies it")
        assert action not in granted, f"{action} needs no permission; the policy should not grant it"


def test_policy_shape():
    problems = shape_problems(load_policy())
    assert not problems, "\n".join(problems)


def test_placeholders_are_documented():
    problems = placeholder_problems(POLICY.read_text(), README.read_text())
    assert not problems, "\n".join(problems)


def test_resources_are_scoped():
    problems = resource_problems(json.loads(render(POLICY.read_text())), authorization_reference())
    assert not problems, "\n".join(problems)


def test_rendered_policy_is_complete_and_fits():
    rendered = render(POLICY.read_text())
    assert "${" not in rendered
    json.loads(rendered)
    size = len(re.sub(r"\s", "", rendered))
    assert size <= MANAGED_POLICY_MAX_CHARS, f"{size} characters, IAM allows {MANAGED_POLICY_MAX_CHARS}"


# -- the tests: each check fails when it should --------------------------------------------------

def mutate(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    policy = copy.deepcopy(load_policy())
    change(policy)
    return policy


def statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in policy["Statement"] if s["Sid"] == sid)


def drop_action(policy: dict[str, Any]) -> None:
    statement(policy, "RdsMoveGlobalClusterWriter")["Action"].remove("rds:FailoverGlobalCluster")


def add_unused_action(policy: dict[str, Any]) -> None:
    statement(policy, "RdsMoveGlobalClusterWriter")["Action"].append("rds:DeleteGlobalCluster")


@pytest.mark.parametrize("change, expected", [
    (drop_action, "the code calls actions the policy lacks:\n  rds:failoverglobalcluster  (src/aws/rds.rs:"),
    (add_unused_action, "the policy grants actions no code calls:\n  rds:deleteglobalcluster"),
], ids=["missing", "unused"])
def test_action_comparison_catches(change, expected):
    calls, _ = called_sdk_operations()
    problems = action_problems(called_actions(calls), granted_actions(mutate(change)))
    assert any(expected in p for p in problems), problems


def test_action_comparison_lists_both_directions_at_once():
    calls, _ = called_sdk_operations()
    problems = action_problems(called_actions(calls), granted_actions(
        mutate(lambda p: (drop_action(p), add_unused_action(p)))))
    assert len(problems) == 2 and "lacks" in problems[0] and "no code calls" in problems[1], problems


def _set(sid: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda p: statement(p, sid).__setitem__(key, value)


def _delete(sid: str, key: str) -> Callable[[dict[str, Any]], None]:
    return lambda p: statement(p, sid).pop(key)


@pytest.mark.parametrize("change, expected", [
    (lambda p: p.__setitem__("Version", "2008-10-17"), "Version"),
    (_delete("RdsDescribeGlobalCluster", "Sid"), "no Sid"),
    (_delete("RdsDescribeGlobalCluster", "Effect"), "no Effect"),
    (_delete("RdsDescribeGlobalCluster", "Resource"), "no Resource"),
    (_set("RdsDescribeGlobalCluster", "Effect", "Deny"), "only allows"),
    (_set("RdsDescribeGlobalCluster", "Action", "*"), "no wildcards"),
    (_set("RdsDescribeGlobalCluster", "Action", ["rds:*"]), "no wildcards"),
    (_set("RdsDescribeGlobalCluster", "Action", ["rds:Describe*"]), "no wildcards"),
    (_set("RdsDescribeGlobalCluster", "Action", ["*:DescribeGlobalClusters"]), "no wildcards"),
    (lambda p: statement(p, "RdsDescribeGlobalCluster").update(
        NotAction=["rds:DeleteGlobalCluster"]), "not allowed"),
    (lambda p: statement(p, "RdsDescribeGlobalCluster")["Action"].append("route53:GetChange"),
     "mixes services"),
    (_set("RdsDescribeGlobalCluster", "Sid", "ReadGlobalCluster"), "starts with 'Rds'"),
    (_set("CognitoSyncUserPools", "Sid", "CognitoReadUserPools"), "duplicate Sids"),
], ids=["version", "sid", "effect", "resource", "deny", "star", "service-star", "prefix-star",
        "wildcard-service", "notaction", "mixed", "sid-prefix", "duplicate-sid"])
def test_shape_check_catches(change, expected):
    problems = shape_problems(mutate(change))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("change, expected", [
    (_set("RdsDescribeMemberClusters", "Resource", ["*"]), "scope it instead of Resource *"),
    (_set("RdsDescribeMemberClusters", "Resource",
          ["arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_X"]), "none of rds:DescribeDBClusters"),
    (_set("RdsDescribeMemberClusters", "Resource", ["arn:aws:rds:*:123456789012:cluster:x"]),
     "wildcards only in the resource part"),
    (_set("BackupListCopyJobs", "Resource", ["arn:aws:backup:us-east-1:123456789012:backup-vault:v"]),
     "has no resource types"),
    (_delete("BackupListCopyJobs", "Condition"), "without a Condition"),
    (_set("CloudWatchReadAlarms", "Action", ["cloudwatch:DescribeAlarm"]), "not an IAM action"),
], ids=["star-on-scoped", "wrong-type", "wild-region", "arn-on-unscoped", "unconditioned-star", "typo"])
def test_resource_check_catches(change, expected):
    problems = resource_problems(json.loads(render(json.dumps(mutate(change)))), authorization_reference())
    assert any(expected in p for p in problems), problems


def test_placeholder_check_catches_undocumented_and_stale():
    text = POLICY.read_text()
    readme = README.read_text()
    undocumented = text.replace("${HOSTED_ZONE_ID}", "${ZONE}")
    assert any("not in deploy/iam/README.md's table: ['ZONE']" in p
               for p in placeholder_problems(undocumented, readme))
    assert any("documented in deploy/iam/README.md but not used: ['HOSTED_ZONE_ID']" in p
               for p in placeholder_problems(undocumented, readme))
    assert any("UPPER_SNAKE" in p for p in placeholder_problems(text.replace("${ACCOUNT_ID}", "${account}"), readme))


def test_presign_check_sees_another_action(tmp_path):
    lib = tmp_path / "lib.rs"
    lib.write_text('use aws_sigv4::sign::v4;\nfn f() { v4::SigningParams::builder().name("sts");'
                   ' let u = "https://sts.amazonaws.com/?Action=AssumeRole&Version=2011-06-15"; }\n')
    module = rust_scan.load_module(lib, rust_scan.Cfg())
    module.path = ROOT / "src" / "lib.rs"  # reported relative to the repository
    found, unknown = presigned_actions([module])
    assert found == {"sts:assumerole": "src/lib.rs"} and not unknown


# -- the scanner on small pieces of Rust ---------------------------------------------------------

OPS = {"aws_sdk_rds": {"describe_db_clusters", "delete_db_cluster", "describe_global_clusters"}}


def scan(tmp_path: Path, files: dict[str, str]) -> tuple[set[tuple[str, int]], list[str]]:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules = rust_scan.module_files([tmp_path / "lib.rs"], rust_scan.Cfg())
    calls, unattributed = rust_scan.sdk_calls(modules, OPS, {}, tmp_path)
    return {(c.operation, c.line) for c in calls}, unattributed


def test_scanner_ignores_comments_strings_and_test_code(tmp_path):
    calls, unattributed = scan(tmp_path, {"lib.rs": """\
struct A { client: aws_sdk_rds::Client }
impl A {
    async fn live(&self) { self.client.describe_db_clusters().send().await; }
    // self.client.delete_db_cluster() in a comment
    /* and /* nested */ self.client.delete_db_cluster() */
    fn s(&self) -> &str { "self.client.delete_db_cluster() // in a string" }
    fn r(&self) -> &str { r#"self.client.delete_db_cluster()"# }
    fn c(&self) -> char { '"' }
    fn l<'a>(&'a self) { self.client.describe_global_clusters(); }
}
#[cfg(test)]
mod tests { fn t(a: &super::A) { a.client.delete_db_cluster(); } }
#[cfg(any(test, feature = "testing"))]
fn helper(client: aws_sdk_rds::Client) { client.delete_db_cluster(); }
#[cfg(not(test))]
fn shipped(client: &aws_sdk_rds::Client) { client.describe_db_clusters(); }
"""})
    assert calls == {("describe_db_clusters", 3), ("describe_global_clusters", 9),
                     ("describe_db_clusters", 16)}, calls
    assert not unattributed


def test_scanner_follows_modules_and_skips_test_only_files(tmp_path):
    calls, _ = scan(tmp_path, {
        "lib.rs": "mod aws;\n#[cfg(test)]\nmod fixtures;\n",
        "aws.rs": "mod rds;\n",
        "aws/rds.rs": "use aws_sdk_rds::Client as Rds;\nfn f(c: &Rds) { c.describe_db_clusters(); }\n",
        "fixtures.rs": "fn g(c: aws_sdk_rds::Client) { c.delete_db_cluster(); }\n",
        "orphan.rs": "fn h(c: aws_sdk_rds::Client) { c.delete_db_cluster(); }\n",
    })
    assert calls == {("describe_db_clusters", 2)}, calls


def test_scanner_tells_domain_methods_from_sdk_calls(tmp_path):
    # The domain trait `GlobalDatabaseApi` has a `describe_db_clusters()` too: called on a
    # non-client in a module without the SDK it is not a call; in a module using the SDK it is
    # reported as unattributed rather than guessed; with arguments it is never an SDK call.
    calls, unattributed = scan(tmp_path, {
        "lib.rs": "mod domain;\nmod adapter;\n",
        "domain.rs": "async fn f(api: &dyn GlobalDatabaseApi) { api.describe_db_clusters().await; }\n",
        "adapter.rs": ("struct R { client: aws_sdk_rds::Client }\n"
                       "impl R { async fn g(&self, x: &Self) {\n"
                       "  self.client.describe_global_clusters();\n"
                       "  x.describe_db_clusters().await;\n"
                       "  self.describe_db_clusters_of(\"id\");\n"
                       "  self.delete_db_cluster(\"id\"); } }\n"),
    })
    assert calls == {("describe_global_clusters", 3)}, calls
    assert unattributed == ["adapter.rs:4: .describe_db_clusters() is an operation of aws_sdk_rds "
                            "but its receiver is not a known client binding"], unattributed


def test_scanner_knows_constructor_and_arc_bindings(tmp_path):
    calls, _ = scan(tmp_path, {"lib.rs": """\
use std::sync::Arc;
fn f(conf: aws_sdk_rds::Config, shared: Arc<aws_sdk_rds::Client>) {
    let c = aws_sdk_rds::Client::from_conf(conf);
    c.describe_db_clusters();
    shared.describe_global_clusters();
}
"""})
    assert calls == {("describe_db_clusters", 4), ("describe_global_clusters", 5)}, calls


def test_cfg_evaluation():
    cfg = rust_scan.Cfg(features=frozenset({"json"}))
    assert cfg.eval("test") is False
    assert cfg.eval('feature = "testing"') is False
    assert cfg.eval('feature = "json"') is True
    assert cfg.eval("not(test)") is True
    assert cfg.eval('any(test, feature = "testing")') is False
    assert cfg.eval('all(unix, target_os = "linux")') is True
    assert cfg.eval("some_custom_flag") is None  # unknown: the code is kept
    assert cfg.eval("all(some_custom_flag, test)") is False
