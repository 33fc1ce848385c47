"""Tests of deploy/: the kustomize base, the example overlay and deploy/remote, built with
`kubectl kustomize` exactly as `kubectl apply -k` would.

Run (after scripts/install-test-deps.sh, which installs kubectl and the .venv):

    .venv/bin/python -m pytest -q tests/support/test_deploy.py

- every built-in object is validated against Kubernetes' own schemas (the PyPI package
  kubernetes-validate, strict: unknown fields are errors), for the oldest and the newest
  Kubernetes release the manifests target; the failoverd.io CRDs as apiextensions.k8s.io/v1
  CustomResourceDefinitions;
- the ServiceMonitor and the PrometheusRule against JSON schemas converted from the
  prometheus-operator CRDs (kube_schemas/, see their $comment), their metadata against
  Kubernetes' ObjectMeta;
- the invariants an HA install relies on, each read from the built objects and from the
  configuration they ship (the ConfigMap the Deployment mounts): two replicas apart, a
  hardened pod, probes on the API port and paths of src/api, a grace period longer than
  server.shutdown_grace, selectors that match, RBAC that covers the Lease, the journal and
  exactly the GitOps calls of src/kube and src/gitops in exactly the namespaces the
  configuration names, egress for every port the configuration needs, pinned images;
- deploy/base/prometheusrule.yaml is what scripts/gen-prometheusrule.py makes of
  config/prometheus/alerts.yaml, and promtool accepts its rules; every runbook_url is absolute,
  and the generator's --runbook-base-url rebases all of them (in a PrometheusRule, in a plain
  rule file, and through an overlay's patch as docs/operations.md describes).

kubectl or promtool missing fails the tests (never skips them). KUBECTL=/path/to/kubectl picks
another kubectl.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import sys
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEPLOY = ROOT / "deploy"
SCHEMAS = HERE / "kube_schemas"

BUILDS = {
    "base": DEPLOY / "base",
    "overlay": DEPLOY / "overlays" / "example",
    "remote": DEPLOY / "remote",
}
# The builds that install failoverd (remote holds only the RBAC for the other cluster).
APPS = ("base", "overlay")
# The oldest Kubernetes release the manifests are meant for, and the newest the pinned
# kubernetes-validate knows.
KUBE_VERSIONS = ("1.31.0", "1.37.0")

CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
MONITORING = "monitoring.coreos.com"
NON_ROOT_UID = 65532  # distroless "nonroot", the Dockerfile's USER

# What failoverd calls in a cluster, from src/kube/mod.rs and src/gitops/ (get by name, list
# with a selector, merge patch, PATCH /scale): (group, resource) -> verbs, per ClusterRole.
GITOPS_RULES: dict[str, dict[tuple[str, str], set[str]]] = {
    "failoverd-flux": {
        ("source.toolkit.fluxcd.io", "gitrepositories"): {"get", "patch"},
        ("source.toolkit.fluxcd.io", "ocirepositories"): {"get", "patch"},
        ("source.toolkit.fluxcd.io", "helmrepositories"): {"get", "patch"},
        ("kustomize.toolkit.fluxcd.io", "kustomizations"): {"get", "patch"},
        ("helm.toolkit.fluxcd.io", "helmreleases"): {"get", "patch"},
    },
    "failoverd-argocd": {
        ("argoproj.io", "applications"): {"get", "patch"},
    },
    "failoverd-workloads": {
        ("apps", "deployments"): {"get", "list", "patch"},
        ("apps", "statefulsets"): {"get", "list", "patch"},
        ("apps", "deployments/scale"): {"patch"},
        ("apps", "statefulsets/scale"): {"patch"},
        ("autoscaling", "horizontalpodautoscalers"): {"get", "list", "patch"},
    },
}
# The Lease and the journal (src/kube/lease.rs, src/kube/journal.rs).
LEASE_VERBS = {"get", "create", "update"}
JOURNAL_VERBS = {"get", "list", "create", "update", "delete"}
# The group of failoverd's EKS access entry in the other cluster (deploy/remote).
REMOTE_GROUP = "failoverd"


# --- building --------------------------------------------------------------------------------

def kubectl() -> str:
    override = os.environ.get("KUBECTL")
    candidates = [override] if override else [str(ROOT / ".venv" / "bin" / "kubectl"), shutil.which("kubectl")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    pytest.fail("kubectl is not installed (looked for "
                f"{', '.join(str(c) for c in candidates if c) or 'kubectl on PATH'}): "
                "run scripts/install-test-deps.sh")


@functools.cache
def _build(name: str) -> tuple[dict[str, Any], ...]:
    path = BUILDS[name]
    proc = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"kubectl kustomize {path.relative_to(ROOT)} failed:\n{proc.stderr}")
    docs = tuple(d for d in yaml.safe_load_all(proc.stdout) if d is not None)
    assert docs, f"kubectl kustomize {path.relative_to(ROOT)} built nothing"
    return docs


def build(name: str) -> list[dict[str, Any]]:
    return json.loads(json.dumps(_build(name)))  # a copy each time: tests never share mutations


def group_of(obj: dict[str, Any]) -> str:
    api_version = obj["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objs, kind)
    assert len(found) == 1, f"expected exactly one {kind}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def ident(obj: dict[str, Any]) -> str:
    ns = obj["metadata"].get("namespace")
    return f"{obj['kind']} {ns + '/' if ns else ''}{obj['metadata']['name']}"


# --- reading the pod and its configuration --------------------------------------------------

class App:
    """The failoverd Deployment of one build, its pod, its container and the configuration it
    mounts (resolved through the container's --config argument and its volumes)."""

    def __init__(self, name: str):
        self.name = name
        self.objs = build(name)
        self.deployment = one(self.objs, "Deployment")
        self.namespace = self.deployment["metadata"]["namespace"]
        self.pod = self.deployment["spec"]["template"]
        self.spec = self.pod["spec"]
        self.labels = self.pod["metadata"].get("labels", {})
        containers = [c for c in self.spec["containers"] if c["name"] == "failoverd"]
        assert len(containers) == 1, "the Deployment has no container named failoverd"
        self.container = containers[0]
        self.files = mounted_files(self.spec, self.container)
        self.config_path = config_argument(self.container)
        self.config = self.read_config()

    def read_config(self) -> dict[str, Any]:
        source = self.files.get(self.config_path)
        assert source is not None, f"--config {self.config_path} is not a file of any mounted volume"
        kind, name, key = source
        assert kind == "configMap", f"{self.config_path} comes from a {kind}, expected a ConfigMap"
        return yaml.safe_load(self.data_of("ConfigMap", name, key))

    def data_of(self, kind: str, name: str, key: str) -> str:
        matches = [o for o in of_kind(self.objs, kind)
                   if o["metadata"]["name"] == name and o["metadata"].get("namespace") == self.namespace]
        assert matches, f"{kind} {self.namespace}/{name} (mounted by the Deployment) is not in the {self.name} build"
        data = matches[0].get("data", {})
        assert key in data, f"{kind} {name} has no key {key!r} (it has {sorted(data)})"
        return data[key]

    def config_file(self, value: str) -> str:
        """A path of the configuration, resolved like failoverd does (relative to the file)."""
        path = PurePosixPath(value)
        if not path.is_absolute():
            path = PurePosixPath(self.config_path).parent / path
        return normalize(str(path))

    def port(self, name_or_number: int | str) -> int:
        if isinstance(name_or_number, int):
            return name_or_number
        for p in self.container.get("ports", []):
            if p.get("name") == name_or_number:
                return p["containerPort"]
        raise AssertionError(f"the container has no port named {name_or_number!r}")

    def listen(self) -> tuple[str, int]:
        listen = (self.config.get("server") or {}).get("listen", "0.0.0.0:8080")
        host, _, port = listen.rpartition(":")
        return host, int(port)


def normalize(path: str) -> str:
    parts: list[str] = []
    for part in PurePosixPath(path).parts[1:]:
        if part == "..":
            parts = parts[:-1]
        elif part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def config_argument(container: dict[str, Any]) -> str:
    args = list(container.get("command", [])) + list(container.get("args", []))
    for i, a in enumerate(args):
        if a == "--config" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    if env.get("FAILOVERD_CONFIG"):
        return env["FAILOVERD_CONFIG"]
    raise AssertionError("the container passes no --config (nor FAILOVERD_CONFIG)")


def mounted_files(spec: dict[str, Any], container: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """Absolute path -> (configMap|secret, object name, key), for every file of a ConfigMap,
    Secret or projected volume the container mounts (items listed explicitly)."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    out: dict[str, tuple[str, str, str]] = {}
    for m in container.get("volumeMounts", []):
        v = volumes[m["name"]]
        sources: list[tuple[str, dict[str, Any]]] = []
        if "configMap" in v:
            sources.append(("configMap", v["configMap"]))
        if "secret" in v:
            sources.append(("secret", {**v["secret"], "name": v["secret"]["secretName"]}))
        for s in v.get("projected", {}).get("sources", []):
            for kind in ("configMap", "secret"):
                if kind in s:
                    sources.append((kind, s[kind]))
        for kind, src in sources:
            assert src.get("items"), f"volume {m['name']}: list the items of {kind} {src['name']} (the tests read them)"
            for item in src["items"]:
                path = m["subPath"] if m.get("subPath") else item["path"]
                full = m["mountPath"] if m.get("subPath") else f"{m['mountPath'].rstrip('/')}/{path}"
                out[normalize(full)] = (kind, src["name"], item["key"])
    return out


def empty_dir_mounts(spec: dict[str, Any], container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    return {normalize(m["mountPath"]): m for m in container.get("volumeMounts", [])
            if "emptyDir" in volumes[m["name"]]}


@functools.cache
def _app(name: str) -> App:
    return App(name)


@pytest.fixture(params=APPS)
def app(request: pytest.FixtureRequest) -> App:
    return _app(request.param)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector (matchLabels and matchExpressions) against labels."""
    if not selector:
        return False  # an empty selector is never what these objects mean
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def seconds(duration: str) -> float:
    """failoverd's durations: 500ms, 30s, 5m, 1h, 1h30m."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", duration)
    assert parts and re.fullmatch(r"(\s*\d+(?:\.\d+)?\s*(ms|s|m|h|d))+\s*", duration), f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def src(path: str) -> str:
    return (ROOT / path).read_text()


def api_routes() -> set[str]:
    """The routes of the top-level router (src/api/mod.rs), outside /v1."""
    return set(re.findall(r'\.route\(\s*"(/[a-z]+)"', src("src/api/mod.rs")))


# --- the builds ------------------------------------------------------------------------------

def test_kubectl_is_installed() -> None:
    proc = subprocess.run([kubectl(), "version", "--client"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"Kustomize Version: v[4-9]", proc.stdout), (
        f"kubectl's kustomize is too old for deploy/ (needs v4 or later):\n{proc.stdout}")


@pytest.mark.parametrize("name", BUILDS)
def test_builds(name: str) -> None:
    objs = build(name)
    seen: set[str] = set()
    for o in objs:
        key = f"{group_of(o)} {ident(o)}"
        assert key not in seen, f"{key} twice"
        seen.add(key)
        if o["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in o["metadata"], f"{ident(o)} is cluster-scoped"
        else:
            assert o["metadata"].get("namespace"), f"{ident(o)} names no namespace"


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", BUILDS)
def test_builtin_objects_match_kubernetes_schemas(name: str, version: str) -> None:
    errors = []
    checked = 0
    for o in build(name):
        if group_of(o) == MONITORING:
            continue  # test_monitoring_objects_match_prometheus_operator_schemas
        try:
            kubernetes_validate.validate(o, version, strict=True)
            checked += 1
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            errors.append(f"{ident(o)}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{ident(o)}: {e.message}")
    assert not errors, "\n".join(errors)
    assert checked > 0


def object_meta_validator(version: str = KUBE_VERSIONS[-1]) -> jsonschema.protocols.Validator:
    root = Path(kubernetes_validate.__file__).resolve().parent / "kubernetes-json-schema" / f"v{version}-local-strict"
    defs = json.loads((root / "_definitions.json").read_text())
    registry = referencing.Registry().with_resource(defs["$id"], referencing.Resource.from_contents(defs))
    schema = {"$ref": f"{defs['$id']}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def monitoring_validator(kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / f"{kind.lower()}-{MONITORING}-v1.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def monitoring_errors(obj: dict[str, Any]) -> list[str]:
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in monitoring_validator(obj["kind"]).iter_errors(obj)]
    errors += [f"metadata.{'.'.join(map(str, e.absolute_path))}: {e.message}"
               for e in object_meta_validator().iter_errors(obj.get("metadata", {}))]
    return errors


@pytest.mark.parametrize("name", APPS)
def test_monitoring_objects_match_prometheus_operator_schemas(name: str) -> None:
    objs = [o for o in build(name) if group_of(o) == MONITORING]
    assert sorted(o["kind"] for o in objs) == ["PrometheusRule", "ServiceMonitor"]
    for o in objs:
        assert o["apiVersion"] == f"{MONITORING}/v1"
        errors = monitoring_errors(o)
        assert not errors, f"{ident(o)}:\n" + "\n".join(errors)


def test_prometheus_operator_schemas_are_faithful_and_closed() -> None:
    for kind in ("ServiceMonitor", "PrometheusRule"):
        path = SCHEMAS / f"{kind.lower()}-{MONITORING}-v1.json"
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        assert "prometheus-operator" in schema["$comment"] and "commit" in schema["$comment"], path.name
    # Unknown or misspelt fields are refused, as the structural CRD does under strict validation.
    sm = one(build("base"), "ServiceMonitor")
    assert not monitoring_errors(sm)
    sm["spec"]["endpoints"][0]["bearerTokenFiles"] = "/x"
    assert monitoring_errors(sm)
    sm = one(build("base"), "ServiceMonitor")
    sm["spec"]["endpoints"][0]["scheme"] = "tcp"
    assert monitoring_errors(sm)
    sm = one(build("base"), "ServiceMonitor")
    sm["metadata"]["lables"] = {}
    assert monitoring_errors(sm)
    rule = one(build("base"), "PrometheusRule")
    rule["spec"]["groups"][0]["rules"][0]["expression"] = "up"
    assert monitoring_errors(rule)
    rule = one(build("base"), "PrometheusRule")
    rule["spec"]["groups"][0]["rules"][0]["record"] = "failoverd:lag"
    assert monitoring_errors(rule), "a rule with both alert and record must be refused"
    rule = one(build("base"), "PrometheusRule")
    rule["spec"]["groups"][0]["rules"][0]["for"] = "2 minutes"
    assert monitoring_errors(rule)


def test_crds_are_shipped_unchanged_and_structural() -> None:
    shipped = [d for d in yaml.safe_load_all((DEPLOY / "base" / "crds.yaml").read_text()) if d]
    built = of_kind(build("base"), "CustomResourceDefinition")
    key = lambda o: o["metadata"]["name"]  # noqa: E731
    assert sorted(built, key=key) == sorted(shipped, key=key)
    assert sorted(key(o) for o in built) == [
        "failoverdidempotencykeys.failoverd.io", "failoverdruns.failoverd.io", "failoverdstates.failoverd.io"]

    def structural(node: dict[str, Any], path: str) -> Iterator[str]:
        if "type" not in node and not node.get("x-kubernetes-int-or-string") \
                and not node.get("x-kubernetes-preserve-unknown-fields"):
            yield f"{path}: no type"
        if "type" in node and node["type"] not in ("object", "array", "string", "integer", "number", "boolean"):
            yield f"{path}: type {node['type']!r} is not an OpenAPI type"
        for name, child in (node.get("properties") or {}).items():
            if path == "" and name == "metadata" and set(child) - {"type"}:
                yield "metadata: only `type: object` is allowed at the root"
            yield from structural(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            yield from structural(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from structural(node["additionalProperties"], f"{path}{{}}")

    for crd in built:
        assert crd["spec"]["group"] == "failoverd.io"
        assert crd["spec"]["scope"] == "Namespaced"
        for v in crd["spec"]["versions"]:
            errors = list(structural(v["schema"]["openAPIV3Schema"], ""))
            assert not errors, f"{key(crd)} {v['name']}: " + "; ".join(errors)


# --- the Deployment --------------------------------------------------------------------------

def test_two_replicas_on_different_nodes_and_zones(app: App) -> None:
    d = app.deployment["spec"]
    assert d["replicas"] == 2
    assert selects(d["selector"], app.labels), "the Deployment's selector does not select its own pods"
    anti = app.spec.get("affinity", {}).get("podAntiAffinity", {})
    terms = list(anti.get("requiredDuringSchedulingIgnoredDuringExecution", []))
    terms += [t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
    assert any(t["topologyKey"] == "kubernetes.io/hostname" and selects(t.get("labelSelector", {}), app.labels)
               for t in terms), "no pod anti-affinity on kubernetes.io/hostname selecting failoverd's pods"
    assert any(c["topologyKey"] == "topology.kubernetes.io/zone" and selects(c.get("labelSelector", {}), app.labels)
               for c in app.spec.get("topologySpreadConstraints", [])), "no topology spread over zones"
    strategy = d.get("strategy", {})
    assert strategy.get("type", "RollingUpdate") == "RollingUpdate"
    unavailable = strategy.get("rollingUpdate", {}).get("maxUnavailable", "25%")
    assert unavailable in (0, 1, "0%", "25%", "50%"), f"maxUnavailable {unavailable} may stop both replicas"


def test_pod_is_hardened(app: App) -> None:
    pod_sc = app.spec.get("securityContext", {})
    assert pod_sc.get("runAsNonRoot") is True
    assert not any(app.spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    for c in app.spec["containers"] + app.spec.get("initContainers", []):
        sc = c.get("securityContext", {})
        merged = {**pod_sc, **sc}
        assert merged.get("runAsNonRoot") is True, c["name"]
        assert merged.get("runAsUser") == NON_ROOT_UID, c["name"]
        assert sc.get("readOnlyRootFilesystem") is True, c["name"]
        assert sc.get("allowPrivilegeEscalation") is False, c["name"]
        assert sc.get("privileged") in (None, False), c["name"]
        assert "ALL" in sc.get("capabilities", {}).get("drop", []), c["name"]
        assert not sc.get("capabilities", {}).get("add"), c["name"]
        assert merged.get("seccompProfile", {}).get("type") == "RuntimeDefault", c["name"]
        resources = c.get("resources", {})
        for r in ("cpu", "memory"):
            assert r in resources.get("requests", {}), f"{c['name']}: no {r} request"
        assert "memory" in resources.get("limits", {}), f"{c['name']}: no memory limit"
    # failoverd talks to the cluster's API with its ServiceAccount token.
    sa_name = app.spec.get("serviceAccountName")
    sa = [o for o in of_kind(app.objs, "ServiceAccount")
          if o["metadata"]["name"] == sa_name and o["metadata"]["namespace"] == app.namespace]
    assert sa, f"ServiceAccount {app.namespace}/{sa_name} is not in the build"
    assert app.spec.get("automountServiceAccountToken") is not False
    assert sa[0].get("automountServiceAccountToken") is not False or app.spec.get("automountServiceAccountToken")
    ns = [o for o in of_kind(app.objs, "Namespace") if o["metadata"]["name"] == app.namespace]
    assert ns and ns[0]["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "restricted"


def test_probes_use_the_api_port_and_paths(app: App) -> None:
    host, port = app.listen()
    assert host in ("0.0.0.0", "[::]", "::"), (
        f"server.listen {host}:{port} is not reachable on the pod's IP (kubelet probes, the Service)")
    routes = api_routes()
    assert {"/healthz", "/readyz", "/metrics"} <= routes, f"src/api/mod.rs routes: {routes}"
    expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
    for probe, path in expected.items():
        p = app.container.get(probe)
        if probe == "startupProbe" and p is None:
            continue
        assert p is not None, f"no {probe}"
        assert p["httpGet"]["path"] == path, probe
        assert app.port(p["httpGet"]["port"]) == port, f"{probe} is not on server.listen's port {port}"
        assert p["httpGet"].get("scheme", "HTTP") == "HTTP", probe
    ports = [p["containerPort"] for p in app.container.get("ports", [])]
    assert port in ports


def test_termination_grace_exceeds_shutdown_grace(app: App) -> None:
    grace = seconds((app.config.get("server") or {}).get("shutdown_grace", "20s"))
    assert app.spec.get("terminationGracePeriodSeconds", 30) > grace


def test_pod_name_comes_from_the_downward_api(app: App) -> None:
    env = {e["name"]: e for e in app.container.get("env", [])}
    assert env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
    # The follower forwards to the leader at the address it advertises on the Lease.
    assert env.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP"


def test_shipped_config_uses_the_kubernetes_store(app: App) -> None:
    state = app.config.get("state") or {}
    assert state.get("store") == "kubernetes"
    k = state.get("kubernetes") or {}
    assert k.get("connect") == {"in_cluster": True}
    assert k.get("namespace", "failoverd") == app.namespace
    duration, renew, skew = (seconds(k.get(f, d)) for f, d in
                             (("lease_duration", "15s"), ("renew_interval", "5s"), ("max_clock_skew", "2s")))
    assert renew * 2 + skew <= duration, "the holder must be able to renew twice before a takeover"
    # state.dir on a writable emptyDir (a cache only, with store: kubernetes).
    state_dir = app.config_file(state.get("dir", "/var/lib/failoverd"))
    mounts = empty_dir_mounts(app.spec, app.container)
    assert state_dir in mounts and not mounts[state_dir].get("readOnly"), f"state.dir {state_dir} is not a writable emptyDir"
    # Production: AWS through IRSA, not an emulator or a profile.
    aws = app.config.get("aws") or {}
    assert "endpoint_url" not in aws and "profile" not in aws


def test_config_files_are_mounted(app: App) -> None:
    server = app.config.get("server") or {}
    assert server.get("tokens_file"), "no tokens_file: every /v1 request would be refused"
    tokens = app.config_file(server["tokens_file"])
    assert tokens in app.files, f"tokens_file {tokens} is not mounted"
    assert app.files[tokens][0] == "secret", f"tokens_file {tokens} should come from a Secret"
    needed: list[tuple[str, str]] = []
    clusters = (app.config.get("gitops") or {}).get("clusters", [])
    for c in clusters + [{"connect": (app.config.get("state") or {}).get("kubernetes", {}).get("connect", {})}]:
        connect = c.get("connect") or {}
        if "eks" in connect:
            needed.append(("configMap", app.config_file(connect["eks"]["ca_file"])))
        if "token" in connect:
            if connect["token"].get("ca_file"):
                needed.append(("configMap", app.config_file(connect["token"]["ca_file"])))
            if "file" in connect["token"]["token"]:
                needed.append(("secret", app.config_file(connect["token"]["token"]["file"])))
        if connect.get("kubeconfig", {}).get("path"):
            needed.append(("secret", app.config_file(connect["kubeconfig"]["path"])))
    for aurora in (app.config.get("replication") or {}).get("aurora", []):
        password = (aurora.get("heartbeat") or {}).get("password") or {}
        if "file" in password:
            needed.append(("secret", app.config_file(password["file"])))
    for kind, path in needed:
        assert path in app.files, f"{path} (named by the configuration) is not mounted"
        assert app.files[path][0] == kind, f"{path} should come from a {kind}"
    # Every ConfigMap file the pod mounts exists in the build with that key.
    for path, (kind, name, key) in app.files.items():
        if kind == "configMap":
            app.data_of("ConfigMap", name, key)


def key_paths(node: Any, prefix: str = "") -> Iterator[str]:
    region = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    if isinstance(node, dict):
        for k, v in node.items():
            k = "<region>" if region.match(str(k)) else str(k)
            path = f"{prefix}.{k}" if prefix else k
            yield path
            yield from key_paths(v, path)
    elif isinstance(node, list):
        for item in node:
            yield from key_paths(item, prefix + "[]")


def test_shipped_config_follows_config_example(app: App) -> None:
    example_text = src("config/example.yaml")
    known = set(key_paths(yaml.safe_load(example_text)))
    # The keys of the Kubernetes store (new with issue 16), and one that example.yaml documents
    # in a comment only (`connect: {in_cluster: true}`).
    known |= {"state.store", "state.kubernetes", "state.kubernetes.connect", "state.kubernetes.connect.in_cluster",
              "state.kubernetes.namespace", "state.kubernetes.lease_name", "state.kubernetes.lease_duration",
              "state.kubernetes.renew_interval", "state.kubernetes.max_clock_skew"}
    assert "connect: {in_cluster: true}" in example_text
    known.add("gitops.clusters[].connect.in_cluster")
    unknown = sorted(set(key_paths(app.config)) - known)
    assert not unknown, f"keys not in config/example.yaml: {unknown}"


def test_images_are_pinned(app: App) -> None:
    for c in app.spec["containers"] + app.spec.get("initContainers", []):
        image = c["image"]
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{c['name']}: image {image} has no tag"
        assert tag != "latest", f"{c['name']}: image {image} is :latest"
    if app.name == "overlay":
        registry = app.container["image"].split("/")[0]
        assert "." in registry, f"the overlay's image {app.container['image']} names no registry"


def test_service_account_has_its_irsa_role(app: App) -> None:
    sa = [o for o in of_kind(app.objs, "ServiceAccount") if o["metadata"]["name"] == app.spec["serviceAccountName"]][0]
    annotations = sa["metadata"].get("annotations", {})
    arn = annotations.get("eks.amazonaws.com/role-arn", "")
    assert re.fullmatch(r"arn:aws(-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]+", arn), arn
    assert annotations.get("eks.amazonaws.com/sts-regional-endpoints") == "true"
    if app.name == "overlay":
        base = [o for o in of_kind(build("base"), "ServiceAccount")][0]["metadata"]["annotations"]
        assert arn != base["eks.amazonaws.com/role-arn"], "the overlay keeps the base's placeholder role"


# --- Service, monitoring, disruption budget, network ---------------------------------------

def test_disruption_budget_keeps_one(app: App) -> None:
    pdb = one(app.objs, "PodDisruptionBudget")
    assert pdb["metadata"]["namespace"] == app.namespace
    assert pdb["spec"].get("minAvailable") == 1
    assert selects(pdb["spec"]["selector"], app.labels)


def test_service_reaches_the_api(app: App) -> None:
    svc = one(app.objs, "Service")
    assert svc["metadata"]["namespace"] == app.namespace
    assert selects({"matchLabels": svc["spec"]["selector"]}, app.labels)
    _, port = app.listen()
    assert [app.port(p.get("targetPort", p["port"])) for p in svc["spec"]["ports"]] == [port]


def test_service_monitor_scrapes_metrics(app: App) -> None:
    svc = one(app.objs, "Service")
    sm = one(app.objs, "ServiceMonitor")
    assert selects(sm["spec"]["selector"], svc["metadata"].get("labels", {})), "the ServiceMonitor does not select the Service"
    namespaces = sm["spec"].get("namespaceSelector", {})
    assert namespaces.get("any") or svc["metadata"]["namespace"] in namespaces.get(
        "matchNames", [sm["metadata"]["namespace"]])
    names = {p.get("name") for p in svc["spec"]["ports"]}
    assert "/metrics" in api_routes()
    for e in sm["spec"]["endpoints"]:
        assert e.get("port") in names, f"endpoint port {e.get('port')} is not a Service port ({names})"
        assert e.get("path", "/metrics") == "/metrics"
        assert e.get("scheme", "http") == "http"
    # /metrics is outside /v1, so it takes no token: no credentials in the ServiceMonitor.
    assert re.search(r'Router::new\(\)\s*\.route\("/healthz"[^;]*\.route\("/metrics"', src("src/api/mod.rs"))


def required_egress_ports(config: dict[str, Any]) -> set[int]:
    """TCP ports failoverd connects to, from the configuration (DNS aside)."""
    ports = {443}  # AWS APIs and the in-cluster API server (kubernetes.default.svc:443)

    def of_url(url: str) -> int:
        m = re.match(r"(https?)://(\[[^]]+\]|[^/:]+)(?::(\d+))?", url)
        assert m, url
        return int(m.group(3)) if m.group(3) else (443 if m.group(1) == "https" else 80)

    for p in (config.get("health") or {}).get("probes", []):
        if p["kind"] == "http":
            ports.add(of_url(p["url"]))
        elif p["kind"] == "tcp":
            ports.add(int(p["address"].rpartition(":")[2]))
    for c in (config.get("gitops") or {}).get("clusters", []):
        connect = c.get("connect") or {}
        for way in ("eks", "token"):
            if way in connect:
                ports.add(of_url(connect[way]["endpoint"]))
    for a in (config.get("replication") or {}).get("aurora", []):
        for endpoint in ((a.get("heartbeat") or {}).get("endpoints") or {}).values():
            host, _, port = endpoint.rpartition(":")
            ports.add(int(port) if host and port.isdigit() else 5432)
    return ports


def test_network_policy_allows_what_failoverd_needs_and_no_more(app: App) -> None:
    np = one(app.objs, "NetworkPolicy")["spec"]
    assert selects(np["podSelector"], app.labels)
    assert set(np.get("policyTypes", [])) == {"Ingress", "Egress"}
    _, api_port = app.listen()
    assert np["ingress"], "no ingress: nothing could reach the API"
    for rule in np["ingress"]:
        ports = rule.get("ports")
        assert ports, "an ingress rule without ports opens every port"
        assert {(app.port(p["port"]), p.get("protocol", "TCP")) for p in ports} == {(api_port, "TCP")}
    allowed: set[tuple[int, str]] = set()
    for rule in np["egress"]:
        assert rule.get("ports"), "an egress rule without ports opens every port"
        allowed |= {(int(p["port"]), p.get("protocol", "TCP")) for p in rule["ports"]}
    dns = [r for r in np["egress"] if {(53, "UDP"), (53, "TCP")} <= {(int(p["port"]), p.get("protocol", "TCP"))
                                                                      for p in r["ports"]}]
    assert dns, "no egress to DNS (UDP and TCP 53)"
    missing = sorted(p for p in required_egress_ports(app.config) if (p, "TCP") not in allowed)
    assert not missing, f"egress to TCP {missing} (named by the configuration) is not allowed"
    # A follower forwards to the leader: the API port of failoverd's own pods, and only theirs.
    to_peer = [r for r in np["egress"]
               if (api_port, "TCP") in {(app.port(p["port"]), p.get("protocol", "TCP")) for p in r["ports"]}]
    assert to_peer, "no egress to the other replica's API port"
    for r in to_peer:
        peers = r.get("to") or []
        assert peers and all(selects(p.get("podSelector", {}), app.labels) and "namespaceSelector" not in p
                             for p in peers), f"egress to the API port reaches more than failoverd: {r}"


# --- RBAC ------------------------------------------------------------------------------------

def allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str, name: str | None = None) -> bool:
    for r in rules:
        if group in r.get("apiGroups", []) and resource in r.get("resources", []) and verb in r.get("verbs", []):
            names = r.get("resourceNames")
            if not names or (name is not None and name in names):
                return True
    return False


def granted(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for r in rules:
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                out.setdefault((g, res), set()).update(r.get("verbs", []))
    return out


def test_no_wildcards_no_secrets_no_cluster_bindings() -> None:
    for name in BUILDS:
        for o in build(name):
            if o["kind"] in ("Role", "ClusterRole"):
                for r in o.get("rules", []):
                    for field in ("apiGroups", "resources", "verbs"):
                        assert "*" not in r.get(field, []), f"{name}: {ident(o)} has a wildcard in {field}"
                    assert "secrets" not in r.get("resources", []), f"{name}: {ident(o)} grants secrets"
                    assert not r.get("nonResourceURLs"), f"{name}: {ident(o)} grants non-resource URLs"
                    assert not {"escalate", "bind", "impersonate"} & set(r.get("verbs", [])), ident(o)
            assert o["kind"] != "ClusterRoleBinding", f"{name}: {ident(o)}: bind per namespace instead"


def test_role_covers_the_lease_and_the_journal(app: App) -> None:
    k = (app.config.get("state") or {}).get("kubernetes") or {}
    namespace, lease = k.get("namespace", "failoverd"), k.get("lease_name", "failoverd")
    sa = app.spec["serviceAccountName"]
    crds = [d for d in yaml.safe_load_all((DEPLOY / "base" / "crds.yaml").read_text()) if d]
    plurals = [(c["spec"]["group"], c["spec"]["names"]["plural"]) for c in crds]
    assert len(plurals) == 3
    bound_rules: list[dict[str, Any]] = []
    for rb in of_kind(app.objs, "RoleBinding"):
        if rb["metadata"]["namespace"] != namespace or rb["roleRef"]["kind"] != "Role":
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == sa and s.get("namespace") == app.namespace
                   for s in rb.get("subjects", [])):
            continue
        roles = [r for r in of_kind(app.objs, "Role")
                 if r["metadata"]["name"] == rb["roleRef"]["name"] and r["metadata"]["namespace"] == namespace]
        assert roles, f"{ident(rb)} refers to a Role that is not in the build"
        bound_rules += roles[0].get("rules", [])
    assert bound_rules, f"no Role bound to ServiceAccount {sa} in {namespace}"
    for verb in LEASE_VERBS:
        assert allows(bound_rules, "coordination.k8s.io", "leases", verb, lease), f"leases {verb} {lease}"
    for group, plural in plurals:
        for verb in JOURNAL_VERBS:
            assert allows(bound_rules, group, plural, verb, "any-run"), f"{plural} {verb}"
    expected = {("coordination.k8s.io", "leases"): LEASE_VERBS, **{p: JOURNAL_VERBS for p in plurals}}
    assert granted(bound_rules) == expected, "the Role grants more than the Lease and the journal need"


def code_kinds() -> dict[str, tuple[str, str]]:
    """ObjectKind -> (group, plural), read from src/gitops/port.rs."""
    text = src("src/gitops/port.rs")

    def body(fn: str) -> str:
        m = re.search(rf"pub fn {fn}\(self\)[^{{]*\{{\s*match self \{{(.*?)\n        \}}", text, re.S)
        assert m, f"fn {fn} not found in src/gitops/port.rs"
        return m.group(1)

    def arms(fn: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for kinds, value in re.findall(r"((?:\|?\s*Self::\w+\s*)+)=>\s*\{?\s*\"([^\"]*)\"", body(fn)):
            for kind in re.findall(r"Self::(\w+)", kinds):
                out[kind] = value
        return out

    groups, plurals = arms("group"), arms("plural")
    assert groups and set(groups) == set(plurals), (groups, plurals)
    return {k: (groups[k], plurals[k]) for k in groups}


def test_gitops_cluster_roles_are_what_the_code_calls() -> None:
    roles = {r["metadata"]["name"]: r for r in of_kind(build("base"), "ClusterRole")}
    assert set(roles) == set(GITOPS_RULES)
    for name, expected in GITOPS_RULES.items():
        assert granted(roles[name]["rules"]) == expected, name
        assert not any(r.get("resourceNames") for r in roles[name]["rules"]), name
    # Every kind of src/gitops/port.rs is covered, and nothing else.
    code = {(g, p) for g, p in code_kinds().values()}
    workloads = {("apps", p) for g, p in code if g == "apps"}
    covered = {k for rules in GITOPS_RULES.values() for k in rules}
    assert covered == code | {(g, f"{p}/scale") for g, p in workloads}
    # The remote cluster gets the very same ClusterRoles.
    remote = {r["metadata"]["name"]: r["rules"] for r in of_kind(build("remote"), "ClusterRole")}
    assert remote == {n: r["rules"] for n, r in roles.items()}


def gitops_namespaces(cluster: dict[str, Any]) -> dict[str, set[str]]:
    """ClusterRole -> the namespaces one gitops.clusters[] entry needs it in."""
    need: dict[str, set[str]] = {}
    for o in (cluster.get("flux") or {}).get("objects", []):
        need.setdefault("failoverd-flux", set()).add(o.get("namespace", "flux-system"))
    for a in (cluster.get("argocd") or {}).get("applications", []):
        need.setdefault("failoverd-argocd", set()).add(a.get("namespace", "argocd"))
    for w in (cluster.get("workloads") or {}).get("items", []):
        need.setdefault("failoverd-workloads", set()).add(w["namespace"])
    return need


def role_bindings(objs: list[dict[str, Any]], subject: dict[str, str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for rb in of_kind(objs, "RoleBinding"):
        if rb["roleRef"]["kind"] != "ClusterRole" or rb["roleRef"]["name"] not in GITOPS_RULES:
            continue
        for s in rb.get("subjects", []):
            if all(s.get(k) == v for k, v in subject.items()):
                out.setdefault(rb["roleRef"]["name"], set()).add(rb["metadata"]["namespace"])
    return out


def test_gitops_bindings_match_the_in_cluster_configuration(app: App) -> None:
    clusters = [c for c in (app.config.get("gitops") or {}).get("clusters", []) if (c.get("connect") or {}).get("in_cluster")]
    assert len(clusters) == 1, "expected one gitops cluster with connect: {in_cluster: true}"
    subject = {"kind": "ServiceAccount", "name": app.spec["serviceAccountName"], "namespace": app.namespace}
    assert role_bindings(app.objs, subject) == gitops_namespaces(clusters[0])


def test_remote_rbac_matches_the_other_cluster(app: App) -> None:
    remote = build("remote")
    assert {o["kind"] for o in remote} == {"ClusterRole", "RoleBinding"}
    others = [c for c in (app.config.get("gitops") or {}).get("clusters", []) if "eks" in (c.get("connect") or {})]
    assert len(others) == 1, "expected one gitops cluster reached with connect.eks"
    subject = {"kind": "Group", "name": REMOTE_GROUP, "apiGroup": "rbac.authorization.k8s.io"}
    assert role_bindings(remote, subject) == gitops_namespaces(others[0])
    for rb in of_kind(remote, "RoleBinding"):
        assert [s["kind"] for s in rb["subjects"]] == ["Group"], ident(rb)
    assert f"--kubernetes-groups {REMOTE_GROUP}" in (DEPLOY / "remote" / "kustomization.yaml").read_text()


# --- the PrometheusRule ------------------------------------------------------------------------

def generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_prometheusrule", ROOT / "scripts" / "gen-prometheusrule.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prometheusrule_is_generated_from_alerts_yaml() -> None:
    gen = generator()
    committed = (DEPLOY / "base" / "prometheusrule.yaml").read_text()
    assert committed == gen.render(), (
        "deploy/base/prometheusrule.yaml is out of date: run .venv/bin/python scripts/gen-prometheusrule.py")
    alerts = yaml.safe_load(src("config/prometheus/alerts.yaml"))
    assert yaml.safe_load(committed)["spec"]["groups"] == alerts["groups"]
    built = one(build("base"), "PrometheusRule")
    assert built["spec"]["groups"] == alerts["groups"]
    groups = [g["name"] for g in alerts["groups"]]
    assert len(groups) == len(set(groups)), "rule group names must be unique (a list-map in the CRD)"
    # The check would notice a change of alerts.yaml.
    with tempfile.TemporaryDirectory() as tmp:
        changed = Path(tmp) / "alerts.yaml"
        changed.write_text(src("config/prometheus/alerts.yaml").replace("for: 2m", "for: 3m", 1))
        assert gen.render(changed) != committed
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-prometheusrule.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def alert_rules(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for g in groups for r in g["rules"] if "alert" in r]


def test_runbook_urls_are_absolute_and_rebased_by_the_generator() -> None:
    gen = generator()
    shipped = alert_rules(yaml.safe_load((DEPLOY / "base" / "prometheusrule.yaml").read_text())["spec"]["groups"])
    assert len(shipped) >= 20
    for rule in shipped:
        url = rule["annotations"]["runbook_url"]
        assert url == f"{gen.DEFAULT_RUNBOOK_BASE_URL}runbooks/alerts.md#{rule['alert'].lower()}", rule["alert"]
    base = "https://git.example.com/platform/failoverd/blob/v0.1.0/"
    for groups in (gen.build(runbook_base_url=base)["spec"]["groups"],
                   yaml.safe_load(gen.render_rules(runbook_base_url=base))["groups"]):
        rebased = alert_rules(groups)
        assert [r["alert"] for r in rebased] == [r["alert"] for r in shipped]
        assert [r["annotations"]["runbook_url"] for r in rebased] == [
            f"{base}runbooks/alerts.md#{r['alert'].lower()}" for r in shipped]
        # Nothing but the links changed.
        for a, b in zip(rebased, shipped):
            assert {**a, "annotations": {**a["annotations"], "runbook_url": ""}} == \
                {**b, "annotations": {**b["annotations"], "runbook_url": ""}}
    # The old flag name still works, from the command line.
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-prometheusrule.py"), "--rules",
                           "--runbook-url-prefix", base], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(f"runbook_url: {base}runbooks/alerts.md#") == len(shipped)
    for bad in ("runbooks/", "ftp://git.example.com/", "https://git.example.com/failoverd", "https:///x/"):
        with pytest.raises(SystemExit):
            gen.build(runbook_base_url=bad)
    # An alert in alerts.yaml whose link is not under the default base is refused, not left behind.
    with tempfile.TemporaryDirectory() as tmp:
        changed = Path(tmp) / "alerts.yaml"
        changed.write_text(src("config/prometheus/alerts.yaml").replace(
            f'"{gen.DEFAULT_RUNBOOK_BASE_URL}runbooks/alerts.md#failoverddown"', '"runbooks/alerts.md#failoverddown"'))
        with pytest.raises(SystemExit, match="FailoverdDown"):
            gen.build(changed, runbook_base_url=base)


def test_an_overlay_patch_rebases_the_runbook_links() -> None:
    """What docs/operations.md says to do in an overlay: the generator's PrometheusRule with the
    published base, listed under `patches:`, replaces the base's rule groups (labels kept)."""
    gen = generator()
    base = "https://git.example.com/platform/failoverd/blob/v0.1.0/"
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "deploy"
        shutil.copytree(DEPLOY, copy)
        overlay = copy / "overlays" / "example"
        (overlay / "prometheusrule.yaml").write_text(gen.render(runbook_base_url=base))
        kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
        kustomization["patches"].append({"path": "prometheusrule.yaml"})
        (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
        proc = subprocess.run([kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rule = one([d for d in yaml.safe_load_all(proc.stdout) if d], "PrometheusRule")
    urls = [r["annotations"]["runbook_url"] for r in alert_rules(rule["spec"]["groups"])]
    assert len(urls) == len(alert_rules(gen.load_groups()))
    assert all(u.startswith(base + "runbooks/alerts.md#") for u in urls), urls
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert not monitoring_errors(rule)


def test_plain_rule_file_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run scripts/install-test-deps.sh"
    gen = generator()
    text = gen.render_rules(runbook_base_url="https://runbooks.example.org/failoverd/")
    assert yaml.safe_load(text)["groups"] == gen.load_groups(runbook_base_url="https://runbooks.example.org/failoverd/")
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(text)
        proc = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules(gen.load_groups()))} rules found" in proc.stdout, proc.stdout


def test_prometheusrule_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run scripts/install-test-deps.sh"
    rule = one(build("overlay"), "PrometheusRule")
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
        proc = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
