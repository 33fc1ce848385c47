"""Tests of the Kubernetes API-server emulator (kube_emulator.py) and the lab's seed worlds.

Run (after tests/support/setup.sh):

    .venv/bin/python -m pytest -q tests/support/test_kube_emulator.py

Every emulator is a child process on a free loopback port, stopped by closing its stdin.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import re
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.signers import RequestSigner

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import kube_emulator  # noqa: E402

TOKEN = "test-token"
K = kube_emulator.KNOB


class Kube:
    """A kube_emulator.py child process."""

    def __init__(self, *extra: str, token: str = TOKEN):
        self.err = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty child never blocks on it
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "kube_emulator.py"), "--port", "0", "--token", token, "--tick", "0.05", *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True)
        assert self.proc.stdout is not None
        self.ready_line = self.proc.stdout.readline().rstrip("\n")
        match = re.fullmatch(r"KUBE_READY port=(\d+) ca=(.+)", self.ready_line)
        assert match, (self.ready_line, self.stderr())
        self.port = int(match.group(1))
        self.ca = None if match.group(2) == "-" else match.group(2)
        self.scheme = "https" if self.ca else "http"
        self.context = ssl.create_default_context(cafile=self.ca) if self.ca else None
        self.token = token

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def call(self, method: str, path: str, body: Any = None, ctype: str = "application/json",
             token: str | None = None, raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": ctype} if data is not None else {}
        token = self.token if token is None else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"{self.scheme}://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=15, context=self.context) as response:
                return response.status, json.loads(response.read() or b"null"), dict(response.headers)
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null"), dict(err.headers)

    def ok(self, method: str, path: str, body: Any = None, ctype: str = "application/json") -> Any:
        status, answer, _ = self.call(method, path, body, ctype)
        assert 200 <= status < 300, (method, path, status, answer)
        return answer

    def seed(self, *objects: dict) -> list[dict]:
        return self.ok("POST", "/_emulator/objects", {"items": list(objects)})["items"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def kube() -> Iterator[Kube]:
    server = Kube()
    try:
        yield server
    finally:
        server.stop()


def wait_for(what: Callable[[], Any], timeout: float = 5.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting ({timeout} s)")
        time.sleep(step)


def cond(obj: dict, ctype: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), None)


def deployment(name: str, ns: str = "web", replicas: int = 1, labels: dict | None = None,
               annotations: dict | None = None, image: str = "nginx:1.27") -> dict:
    labels = {"app": name, **(labels or {})}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations or {}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "main", "image": image}]}}}}


def kustomization(name: str, ns: str = "flux-system", annotations: dict | None = None, **spec: Any) -> dict:
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations or {}},
            "spec": {"interval": "10m", "path": "./apps", "prune": True,
                     "sourceRef": {"kind": "GitRepository", "name": "platform"}, **spec}}


def application(name: str, annotations: dict | None = None, status: dict | None = None) -> dict:
    obj = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
           "metadata": {"name": name, "namespace": "argocd", "annotations": annotations or {}},
           "spec": {"project": "default",
                    "source": {"repoURL": "https://git.example.com/web.git", "targetRevision": "main", "path": "deploy"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": "web"}}}
    if status is not None:
        obj["status"] = status
    return obj


DEPLOY = "/apis/apps/v1/namespaces/web/deployments"
KS = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations"
APPS = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications"


# -- launcher, discovery, auth --------------------------------------------------------------------


def test_discovery_documents(kube: Kube) -> None:
    assert kube.ca is None and kube.scheme == "http"
    version = kube.ok("GET", "/version")
    assert version["gitVersion"] == f"v{kube_emulator.DEFAULT_KUBE_VERSION}" and version["major"] == "1"
    assert kube.ok("GET", "/api") == {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
    core = kube.ok("GET", "/api/v1")
    assert core["kind"] == "APIResourceList" and core["groupVersion"] == "v1"
    assert {r["name"] for r in core["resources"]} >= {"namespaces", "events"}
    groups = {g["name"]: g for g in kube.ok("GET", "/apis")["groups"]}
    assert set(groups) == {"apps", "autoscaling", "coordination.k8s.io", "source.toolkit.fluxcd.io",
                           "kustomize.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io", "argoproj.io",
                           "failoverd.io"}
    # failoverd's own kinds come from the CRDs it ships.
    failoverd = {r["name"] for r in kube.ok("GET", "/apis/failoverd.io/v1alpha1")["resources"]}
    assert failoverd == {"failoverdruns", "failoverdstates", "failoverdidempotencykeys"}
    source = groups["source.toolkit.fluxcd.io"]
    assert [v["version"] for v in source["versions"]] == ["v1", "v1beta2"]
    assert source["preferredVersion"] == {"groupVersion": "source.toolkit.fluxcd.io/v1", "version": "v1"}
    assert kube.ok("GET", "/apis/apps")["kind"] == "APIGroup"
    apps = {r["name"]: r for r in kube.ok("GET", "/apis/apps/v1")["resources"]}
    assert apps["deployments"]["singularName"] == "deployment" and apps["deployments"]["namespaced"] is True
    assert apps["deployments"]["kind"] == "Deployment" and "patch" in apps["deployments"]["verbs"]
    assert {k: apps["deployments/scale"][k] for k in ("group", "version", "kind")} == \
        {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert "statefulsets/status" in apps and "statefulsets/scale" in apps
    beta = {r["name"] for r in kube.ok("GET", "/apis/source.toolkit.fluxcd.io/v1beta2")["resources"]}
    assert beta == {"ocirepositories", "ocirepositories/status"}
    argo = {r["name"] for r in kube.ok("GET", "/apis/argoproj.io/v1alpha1")["resources"]}
    assert argo == {"applications"}  # no status subresource, like the real CRD
    status, answer, _ = kube.call("GET", "/apis/nope.example.com/v1")
    assert status == 404 and answer["reason"] == "NotFound" and answer["kind"] == "Status"
    # keep-alive: two requests on one connection, each with its Content-Length
    conn = http.client.HTTPConnection("127.0.0.1", kube.port, timeout=5)
    for _ in range(2):
        conn.request("GET", "/version", headers={"Authorization": f"Bearer {TOKEN}"})
        response = conn.getresponse()
        assert response.status == 200 and int(response.headers["Content-Length"]) == len(response.read())
    conn.close()


def test_auth_and_request_log(kube: Kube) -> None:
    kube.ok("DELETE", "/_emulator/requests")
    status, answer, _ = kube.call("GET", "/version", token="")
    assert status == 401 and answer == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                        "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    assert kube.call("GET", "/apis", token="wrong")[0] == 401
    assert kube.call("GET", "/apis", token="k8s-aws-v1.abc")[0] == 401  # no --eks-cluster
    kube.ok("GET", "/api")
    log = kube.ok("GET", "/_emulator/requests")
    assert [(e["path"], e["status"], e["auth"]) for e in log] == [
        ("/version", 401, "rejected:no bearer token"), ("/apis", 401, "rejected:unknown token"),
        ("/apis", 401, "rejected:EKS tokens are not accepted (no --eks-cluster)"), ("/api", 200, "static")]
    assert kube.ok("DELETE", "/_emulator/requests") == [] and kube.ok("GET", "/_emulator/requests") == []


def test_exits_when_stdin_closes() -> None:
    server = Kube()
    assert server.proc.stdin is not None
    server.proc.stdin.close()
    assert server.proc.wait(timeout=10) == 0


# -- REST verbs ------------------------------------------------------------------------------------


def test_crud_and_list_selectors(kube: Kube) -> None:
    status, answer, _ = kube.call("POST", DEPLOY, deployment("x"))
    assert status == 404 and answer["message"] == 'namespaces "web" not found'
    kube.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}})
    kube.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    created = kube.ok("POST", DEPLOY, deployment("sel-a", labels={"tier": "api", "env": "prod"}))
    assert created["metadata"]["generation"] == 1 and re.fullmatch(r"\d+", created["metadata"]["resourceVersion"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created["metadata"]["creationTimestamp"])
    assert created["metadata"]["uid"] and "status" not in created
    kube.ok("POST", DEPLOY, deployment("sel-b", labels={"tier": "web", "env": "prod"}))
    kube.ok("POST", DEPLOY, deployment("sel-c", labels={"tier": "web"}))
    kube.ok("POST", "/apis/apps/v1/namespaces/other/deployments", deployment("sel-d", "other", labels={"tier": "db"}))
    status, answer, _ = kube.call("POST", DEPLOY, deployment("sel-a"))
    assert status == 409 and answer["reason"] == "AlreadyExists" and answer["details"] == \
        {"name": "sel-a", "group": "apps", "kind": "deployments"}

    def names(selector: str, path: str = DEPLOY) -> list[str]:
        listed = kube.ok("GET", path + "?" + urllib.parse.urlencode({"labelSelector": selector}))
        assert listed["kind"] == "DeploymentList" and listed["apiVersion"] == "apps/v1"
        assert re.fullmatch(r"\d+", listed["metadata"]["resourceVersion"])
        return [i["metadata"]["name"] for i in listed["items"] if i["metadata"]["name"].startswith("sel-")]

    assert names("tier=web") == ["sel-b", "sel-c"]
    assert names("tier==api") == ["sel-a"]
    assert names("tier!=web") == ["sel-a"]
    assert names("tier in (api, web),env=prod") == ["sel-a", "sel-b"]
    assert names("tier notin (web)") == ["sel-a"]
    assert names("env") == ["sel-a", "sel-b"]
    assert names("!env") == ["sel-c"]
    assert names("tier in (db,web)", "/apis/apps/v1/deployments") == ["sel-d", "sel-b", "sel-c"]
    listed = kube.ok("GET", DEPLOY + "?fieldSelector=metadata.name%3Dsel-b")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["sel-b"]
    assert "kind" not in listed["items"][0]  # typed lists carry no TypeMeta on their items
    assert kube.call("GET", DEPLOY + "?labelSelector=a%20in")[0] == 400
    page = kube.ok("GET", DEPLOY + "?limit=2")
    assert len(page["items"]) == 2 and page["metadata"]["continue"]
    rest = kube.ok("GET", DEPLOY + "?limit=2&continue=" + page["metadata"]["continue"])
    assert rest["items"][0]["metadata"]["name"] not in [i["metadata"]["name"] for i in page["items"]]
    got = kube.ok("GET", DEPLOY + "/sel-a")
    assert got["kind"] == "Deployment" and got["apiVersion"] == "apps/v1" and got["spec"]["replicas"] == 1
    deleted = kube.ok("DELETE", DEPLOY + "/sel-c")
    assert deleted["metadata"]["name"] == "sel-c"
    status, answer, _ = kube.call("GET", DEPLOY + "/sel-c")
    assert status == 404 and answer == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                        "message": 'deployments.apps "sel-c" not found', "reason": "NotFound",
                                        "details": {"name": "sel-c", "group": "apps", "kind": "deployments"},
                                        "code": 404}
    assert kube.call("GET", "/apis/apps/v1/namespaces/web/widgets")[0] == 404
    status, answer, _ = kube.call("GET", DEPLOY + "?watch=true")
    assert status == 405 and "watch is not supported" in answer["message"]
    # dry run: validated, answered, not stored
    dry = kube.ok("POST", DEPLOY + "?dryRun=All", deployment("dry"))
    assert dry["metadata"]["name"] == "dry" and kube.call("GET", DEPLOY + "/dry")[0] == 404
    # finalizers hold a deletion until they are removed
    held = deployment("held")
    held["metadata"]["finalizers"] = ["example.com/keep"]
    kube.ok("POST", DEPLOY, held)
    marked = kube.ok("DELETE", DEPLOY + "/held")
    assert marked["metadata"]["deletionTimestamp"]
    kube.ok("PATCH", DEPLOY + "/held", {"metadata": {"finalizers": None}}, "application/merge-patch+json")
    assert kube.call("GET", DEPLOY + "/held")[0] == 404


def test_patches(kube: Kube) -> None:
    kube.seed(deployment("patchme", replicas=2), kustomization("patchme"))
    path = DEPLOY + "/patchme"
    merged = kube.ok("PATCH", path, {"metadata": {"labels": {"x": "1"}}, "spec": {"replicas": 3}},
                     "application/merge-patch+json")
    assert merged["metadata"]["labels"] == {"app": "patchme", "x": "1"} and merged["spec"]["replicas"] == 3
    removed = kube.ok("PATCH", path, {"metadata": {"labels": {"x": None}}}, "application/merge-patch+json")
    assert removed["metadata"]["labels"] == {"app": "patchme"}
    patched = kube.ok("PATCH", path, [{"op": "test", "path": "/spec/replicas", "value": 3},
                                      {"op": "replace", "path": "/spec/replicas", "value": 5}],
                      "application/json-patch+json")
    assert patched["spec"]["replicas"] == 5
    status, answer, _ = kube.call("PATCH", path, [{"op": "test", "path": "/spec/replicas", "value": 1},
                                                  {"op": "replace", "path": "/spec/replicas", "value": 9}],
                                  "application/json-patch+json")
    assert status == 422 and answer["reason"] == "Invalid"
    unchanged = kube.ok("GET", path)
    assert unchanged["spec"] == patched["spec"] and unchanged["metadata"]["generation"] == patched["metadata"]["generation"]
    assert kube.call("PATCH", path, {"op": "nope"}, "application/json-patch+json")[0] == 400
    strategic = kube.ok("PATCH", path, {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "image": "busybox:1.36"}]}}}}, "application/strategic-merge-patch+json")
    assert [c["name"] for c in strategic["spec"]["template"]["spec"]["containers"]] == ["main", "sidecar"]
    status, answer, _ = kube.call("PATCH", KS + "/patchme", {"spec": {"suspend": True}},
                                  "application/strategic-merge-patch+json")
    assert status == 415 and answer["reason"] == "UnsupportedMediaType"
    status, answer, _ = kube.call("PATCH", path, {"spec": {}}, "application/apply-patch+yaml")
    assert status == 415 and "server-side apply" in answer["message"]
    assert kube.ok("PATCH", KS + "/patchme", {"spec": {"suspend": True}},
                   "application/merge-patch+json")["spec"]["suspend"] is True


def test_resource_version_conflicts(kube: Kube) -> None:
    [obj] = kube.seed(kustomization("rv", suspend=True))  # suspended: no controller writes in between
    path = KS + "/rv"
    stale = dict(obj, spec={**obj["spec"], "path": "./one"})
    fresh = kube.ok("PUT", path, stale)
    assert fresh["spec"]["path"] == "./one" and fresh["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]
    status, answer, _ = kube.call("PUT", path, dict(obj, spec={**obj["spec"], "path": "./two"}))
    assert status == 409 and answer["reason"] == "Conflict" and answer["message"] == (
        'Operation cannot be fulfilled on kustomizations.kustomize.toolkit.fluxcd.io "rv": the object has been '
        "modified; please apply your changes to the latest version and try again")
    assert answer["details"] == {"name": "rv", "group": "kustomize.toolkit.fluxcd.io", "kind": "kustomizations"}
    status, answer, _ = kube.call("PATCH", path, {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                                                  "spec": {"path": "./three"}}, "application/merge-patch+json")
    assert status == 409
    ok = kube.ok("PATCH", path, {"metadata": {"resourceVersion": fresh["metadata"]["resourceVersion"]},
                                 "spec": {"path": "./three"}}, "application/merge-patch+json")
    assert ok["spec"]["path"] == "./three"
    no_rv = json.loads(json.dumps(ok))
    del no_rv["metadata"]["resourceVersion"]
    status, answer, _ = kube.call("PUT", path, no_rv)  # CRDs refuse unconditional updates
    assert status == 422 and answer["details"]["causes"][0]["field"] == "metadata.resourceVersion"
    [dep] = kube.seed(deployment("rvdep"))
    del dep["metadata"]["resourceVersion"]
    dep["spec"]["replicas"] = 2
    assert kube.ok("PUT", DEPLOY + "/rvdep", dep)["spec"]["replicas"] == 2  # built-in kinds allow them
    # leases: the CRUD failoverd's leadership will use
    leases = "/apis/coordination.k8s.io/v1/namespaces/web/leases"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "failoverd"},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                      "renewTime": "2026-11-28T10:00:00.000000Z"}}
    made = kube.ok("POST", leases, lease)
    assert "generation" not in made["metadata"]
    assert kube.call("POST", leases, lease)[0] == 409
    made["spec"]["holderIdentity"] = "b"
    kube.ok("PUT", leases + "/failoverd", made)
    assert kube.call("PUT", leases + "/failoverd", made)[0] == 409


def test_generation_rules(kube: Kube) -> None:
    [ks] = kube.seed(kustomization("gen", annotations={K + "never-finishes": "true"}))
    path = KS + "/gen"
    assert ks["metadata"]["generation"] == 1
    meta_only = kube.ok("PATCH", path, {"metadata": {"labels": {"a": "b"}}}, "application/merge-patch+json")
    assert meta_only["metadata"]["generation"] == 1
    spec = kube.ok("PATCH", path, {"spec": {"suspend": True}}, "application/merge-patch+json")
    assert spec["metadata"]["generation"] == 2
    # the main resource ignores status; the status subresource keeps only status
    ignored = kube.ok("PATCH", path, {"status": {"lastHandledReconcileAt": "x"}}, "application/merge-patch+json")
    assert ignored["status"].get("lastHandledReconcileAt") != "x"
    written = kube.ok("PATCH", path + "/status", {"status": {"lastHandledReconcileAt": "x"},
                                                  "spec": {"path": "./ignored"}}, "application/merge-patch+json")
    assert written["status"]["lastHandledReconcileAt"] == "x" and written["spec"]["path"] == "./apps"
    assert written["metadata"]["generation"] == 2
    got = kube.ok("GET", path + "/status")
    assert got["kind"] == "Kustomization" and got["status"]["lastHandledReconcileAt"] == "x"
    [dep] = kube.seed(deployment("gendep"))
    scaled = kube.ok("PATCH", DEPLOY + "/gendep", {"spec": {"replicas": 2}}, "application/merge-patch+json")
    assert scaled["metadata"]["generation"] == dep["metadata"]["generation"] + 1
    # Argo CD's Application has no status subresource: status goes through the main resource and, as on a
    # real cluster, a status change bumps the generation
    [app] = kube.seed(application("genapp", {K + "stale-health": "true"}))
    app2 = kube.ok("PATCH", APPS + "/genapp", {"status": {"sync": {"status": "OutOfSync"}}},
                   "application/merge-patch+json")
    assert app2["status"]["sync"]["status"] == "OutOfSync"
    assert app2["metadata"]["generation"] == app["metadata"]["generation"] + 1
    assert kube.call("GET", APPS + "/genapp/status")[0] == 404


def test_status_created_by_server_and_defaults(kube: Kube) -> None:
    body = kustomization("fresh", annotations={K + "never-finishes": "true"})
    body["status"] = {"observedGeneration": 7}
    created = kube.ok("POST", KS, body)
    assert created["status"] == {"observedGeneration": -1}  # status dropped on create, the CRD default applied
    assert created["spec"]["force"] is False  # a CRD default
    oci = {"apiVersion": "source.toolkit.fluxcd.io/v1beta2", "kind": "OCIRepository",
           "metadata": {"name": "charts"}, "spec": {"interval": "5m", "url": "oci://ghcr.io/example/charts"}}
    made = kube.ok("POST", "/apis/source.toolkit.fluxcd.io/v1beta2/namespaces/flux-system/ocirepositories", oci)
    assert made["apiVersion"] == "source.toolkit.fluxcd.io/v1beta2" and made["spec"]["timeout"] == "60s"
    as_v1 = kube.ok("GET", "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/ocirepositories/charts")
    assert as_v1["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert as_v1["metadata"]["uid"] == made["metadata"]["uid"]


def test_scale_subresource(kube: Kube) -> None:
    [dep] = kube.seed(deployment("scaled", replicas=2, annotations={K + "pod-start-seconds": "0.05"}))
    path = DEPLOY + "/scaled/scale"
    wait_for(lambda: kube.ok("GET", DEPLOY + "/scaled").get("status", {}).get("readyReplicas") == 2)
    scale = kube.ok("GET", path)
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 2} and scale["status"]["selector"] == "app=scaled"
    assert set(scale["metadata"]) == {"name", "namespace", "uid", "resourceVersion", "creationTimestamp"}
    stale = json.loads(json.dumps(scale))
    scale["spec"]["replicas"] = 4
    put = kube.ok("PUT", path, scale)
    assert put["spec"]["replicas"] == 4
    after = kube.ok("GET", DEPLOY + "/scaled")
    assert after["spec"]["replicas"] == 4 and after["metadata"]["generation"] == dep["metadata"]["generation"] + 1
    for _ in range(50):  # the Scale's resourceVersion is the workload's (read while no status write intervenes)
        first, got, second = kube.ok("GET", DEPLOY + "/scaled"), kube.ok("GET", path), kube.ok("GET", DEPLOY + "/scaled")
        if first["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]:
            assert got["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the deployment never stood still")
    stale["spec"]["replicas"] = 7
    status, answer, _ = kube.call("PUT", path, stale)
    assert status == 409 and answer["reason"] == "Conflict"
    assert kube.ok("PATCH", path, {"spec": {"replicas": 1}}, "application/merge-patch+json")["spec"]["replicas"] == 1
    status, answer, _ = kube.call("PATCH", path, {"spec": {"replicas": -1}}, "application/merge-patch+json")
    assert status == 422 and answer["details"]["causes"][0]["field"] == "spec.replicas"
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "jobs"},
           "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}}}
    kube.seed(sts)
    sts_scale = "/apis/apps/v1/namespaces/jobs/statefulsets/db/scale"
    assert kube.ok("PATCH", sts_scale, {"spec": {"replicas": 3}}, "application/merge-patch+json")["spec"]["replicas"] == 3
    assert kube.ok("GET", "/apis/apps/v1/namespaces/jobs/statefulsets/db")["spec"]["replicas"] == 3


def test_schema_rejection(kube: Kube) -> None:
    for ns in ("flux-system", "web"):
        kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    def stored() -> set[tuple[str, str, str]]:  # names only: the controllers may be writing statuses
        return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
                for o in kube.ok("GET", "/_emulator/objects")["items"]}

    before = stored()
    bad = kustomization("bad", interval="ten minutes")
    del bad["spec"]["sourceRef"]
    status, answer, _ = kube.call("POST", KS, bad)
    assert status == 422 and answer["reason"] == "Invalid" and answer["kind"] == "Status"
    assert {c["field"] for c in answer["details"]["causes"]} == {"spec.interval", "spec.sourceRef"}
    assert answer["details"]["kind"] == "Kustomization" and answer["details"]["name"] == "bad"
    assert answer["message"].startswith('Kustomization.kustomize.toolkit.fluxcd.io "bad" is invalid: [')
    wrong = kustomization("bad2")
    wrong["status"] = {"conditions": [{"type": "Ready", "status": "Yes"}]}
    status, answer, _ = kube.call("POST", "/_emulator/objects", wrong)
    assert status == 422 and "status.conditions[0].status" in {c["field"] for c in answer["details"]["causes"]}
    assert kube.call("POST", "/_emulator/objects", {"items": [kustomization("valid-first"), wrong]})[0] == 422
    dep = deployment("baddep")
    dep["spec"]["replicas"] = "two"
    status, answer, _ = kube.call("POST", DEPLOY, dep)
    assert status == 422 and answer["details"]["causes"][0]["field"] == "spec.replicas"
    dep = deployment("baddep")
    dep["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    status, answer, _ = kube.call("POST", DEPLOY, dep)
    assert status == 422 and "selector" in answer["message"]
    status, answer, _ = kube.call("POST", DEPLOY, deployment("Bad_Name"))
    assert status == 422 and answer["details"]["causes"][0]["field"] == "metadata.name"
    app = application("badapp", status={"health": {"status": "Fine"}})
    assert kube.call("POST", "/_emulator/objects", app)[0] == 422
    assert stored() == before  # nothing stored
    # unknown fields: pruned with a warning (the default), refused when Strict
    extra = kustomization("extra")
    extra["spec"]["notAField"] = 1
    status, created, headers = kube.call("POST", KS, extra)
    assert status == 201 and "notAField" not in created["spec"]
    assert 'unknown field \\"spec.notAField\\"' in headers["Warning"]
    extra["metadata"]["name"] = "extra2"
    status, answer, _ = kube.call("POST", KS + "?fieldValidation=Strict", extra)
    assert status == 400 and "spec.notAField" in answer["message"]


# -- controllers -----------------------------------------------------------------------------------


def flux_ready(kube: Kube, name: str, token: str) -> Callable[[], Any]:
    def check() -> Any:
        obj = kube.ok("GET", f"{KS}/{name}")
        ready = cond(obj, "Ready")
        return obj if obj["status"].get("lastHandledReconcileAt") == token and ready and \
            ready["status"] in ("True", "False") and not (ready["status"] == "True" and cond(obj, "Reconciling")) \
            else None
    return check


def request_reconcile(kube: Kube, name: str, token: str) -> dict:
    return kube.ok("PATCH", f"{KS}/{name}", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}},
                   "application/merge-patch+json")


def test_flux_reconcile(kube: Kube) -> None:
    fast = {K + "reconcile-seconds": "0.5"}
    kube.seed(kustomization("plain", annotations=fast), kustomization("stale", annotations={**fast, K + "stale-ready": "true"}),
              kustomization("early", annotations={**fast, K + "handled-early": "true"}),
              kustomization("broken", annotations={**fast, K + "ready-false-message": "kustomize build failed: boom"}),
              kustomization("paused", annotations=fast, suspend=True))
    first = wait_for(lambda: (o := kube.ok("GET", f"{KS}/plain")).get("status", {}).get("observedGeneration") == 1
                     and cond(o, "Ready")["status"] == "True" and o)
    assert re.fullmatch(r"Applied revision: main@sha1:[0-9a-f]{40}", cond(first, "Ready")["message"])
    for name in ("stale", "early", "broken"):
        wait_for(lambda: kube.ok("GET", f"{KS}/{name}").get("status", {}).get("observedGeneration") == 1 or
                 cond(kube.ok("GET", f"{KS}/{name}"), "Ready")["status"] == "False")
    assert kube.ok("GET", f"{KS}/paused")["status"] == {"observedGeneration": -1}  # the CRD's status default

    # plain: Reconciling + Ready=Unknown, then Ready=True with the token handled
    request_reconcile(kube, "plain", "t1")
    during = wait_for(lambda: cond(o := kube.ok("GET", f"{KS}/plain"), "Reconciling") and o)
    assert cond(during, "Ready")["status"] == "Unknown" and cond(during, "Ready")["reason"] == "Progressing"
    assert during["status"].get("lastHandledReconcileAt") != "t1"
    done = wait_for(flux_ready(kube, "plain", "t1"))
    ready = cond(done, "Ready")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "ReconciliationSucceeded", 1)
    assert cond(done, "Reconciling") is None

    # a spec change is reconciled too (observedGeneration follows generation)
    kube.ok("PATCH", f"{KS}/plain", {"spec": {"path": "./changed"}}, "application/merge-patch+json")
    wait_for(lambda: kube.ok("GET", f"{KS}/plain")["status"]["observedGeneration"] == 2)

    # stale-ready: the old Ready=True (old observedGeneration) stays while reconciling
    kube.ok("PATCH", f"{KS}/stale", {"spec": {"path": "./v2"}}, "application/merge-patch+json")
    during = wait_for(lambda: cond(o := kube.ok("GET", f"{KS}/stale"), "Reconciling") and o)
    assert cond(during, "Ready")["status"] == "True" and cond(during, "Ready")["observedGeneration"] == 1
    assert during["metadata"]["generation"] == 2
    wait_for(lambda: cond(kube.ok("GET", f"{KS}/stale"), "Ready")["observedGeneration"] == 2)

    # handled-early: lastHandledReconcileAt is written while still Reconciling
    request_reconcile(kube, "early", "t2")
    during = wait_for(lambda: cond(o := kube.ok("GET", f"{KS}/early"), "Reconciling") and o)
    assert during["status"]["lastHandledReconcileAt"] == "t2" and cond(during, "Ready")["status"] == "Unknown"
    wait_for(lambda: cond(kube.ok("GET", f"{KS}/early"), "Ready")["status"] == "True")

    # ready-false-message: Ready=False, reason and message, observedGeneration not advanced
    request_reconcile(kube, "broken", "t3")
    failed = wait_for(lambda: (o := kube.ok("GET", f"{KS}/broken")).get("status", {}).get("lastHandledReconcileAt") == "t3"
                      and cond(o, "Ready")["status"] == "False" and o)
    ready = cond(failed, "Ready")
    assert (ready["reason"], ready["message"], ready["observedGeneration"]) == \
        ("ReconciliationFailed", "kustomize build failed: boom", 1)
    assert failed["status"]["observedGeneration"] == -1  # Flux advances it only on success
    assert cond(failed, "Reconciling")["reason"] == "ProgressingWithRetry"

    # suspended: ignored, requestedAt included
    request_reconcile(kube, "paused", "t4")
    time.sleep(0.6)
    paused = kube.ok("GET", f"{KS}/paused")
    assert paused["status"].get("lastHandledReconcileAt") is None and cond(paused, "Reconciling") is None


def test_flux_never_finishes_and_other_kinds(kube: Kube) -> None:
    kube.seed(kustomization("forever", annotations={K + "never-finishes": "true"}))
    during = wait_for(lambda: cond(o := kube.ok("GET", f"{KS}/forever"), "Reconciling") and o)
    time.sleep(0.4)
    assert cond(kube.ok("GET", f"{KS}/forever"), "Reconciling")["status"] == "True"
    assert during["status"]["observedGeneration"] == -1
    git = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
           "metadata": {"name": "platform", "namespace": "flux-system", "annotations": {K + "reconcile-seconds": "0.1"}},
           "spec": {"interval": "1m", "url": "https://git.example.com/platform.git", "ref": {"branch": "main"}}}
    hr = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
          "metadata": {"name": "redis", "namespace": "flux-system", "annotations": {K + "reconcile-seconds": "0.1"}},
          "spec": {"interval": "5m", "chart": {"spec": {"chart": "redis", "sourceRef": {"kind": "HelmRepository", "name": "bitnami"}}}}}
    repo = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": {"name": "bitnami", "namespace": "flux-system", "annotations": {K + "reconcile-seconds": "0.1"}},
            "spec": {"interval": "1h", "url": "https://charts.example.com/bitnami"}}
    kube.seed(git, hr, repo)
    for path in ("/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/platform",
                 "/apis/helm.toolkit.fluxcd.io/v2/namespaces/flux-system/helmreleases/redis",
                 "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/helmrepositories/bitnami"):
        done = wait_for(lambda: (o := kube.ok("GET", path)).get("status", {}).get("observedGeneration") == 1 and o)
        assert cond(done, "Ready")["status"] == "True"
    git_done = kube.ok("GET", "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/platform")
    assert git_done["status"]["artifact"]["revision"].startswith("main@sha1:")


def test_argo_sync_and_stale_health(kube: Kube) -> None:
    old = "2026-11-28T06:00:00Z"
    base_status = {"sync": {"status": "OutOfSync", "revision": "a" * 40}, "health": {"status": "Degraded"},
                   "reconciledAt": old}
    knobs = {K + "sync-seconds": "0.3", K + "health-lag-seconds": "0.6"}
    kube.seed(application("lag", knobs, json.loads(json.dumps(base_status))),
              application("stuck", {**knobs, K + "stale-health": "true"}, json.loads(json.dumps(base_status))),
              application("fails", {**knobs, K + "sync-fail-message": "one or more objects failed to apply"},
                          json.loads(json.dumps(base_status))))
    operation = {"sync": {"revision": "b" * 40, "prune": True, "syncStrategy": {"hook": {}}},
                 "initiatedBy": {"username": "failoverd"}, "retry": {"limit": 2}}
    for name in ("lag", "stuck", "fails"):
        kube.ok("PATCH", f"{APPS}/{name}", {"operation": operation, "status": {"operationState": None}},
                "application/merge-patch+json")
    running = wait_for(lambda: ((o := kube.ok("GET", f"{APPS}/lag")).get("status", {}).get("operationState") or {}).get("phase") == "Running" and o)
    assert running["status"]["operationState"]["operation"] == operation and running["operation"] == operation
    done = wait_for(lambda: ((o := kube.ok("GET", f"{APPS}/lag"))["status"]["operationState"]["phase"] == "Succeeded") and o)
    state = done["status"]["operationState"]
    assert "operation" not in done and state["finishedAt"] >= state["startedAt"]
    assert state["syncResult"]["revision"] == "b" * 40
    assert done["status"]["sync"]["status"] == "Synced" and done["status"]["sync"]["revision"] == "b" * 40
    # health is stale: the old values until health-lag after finishedAt
    assert done["status"]["health"]["status"] == "Degraded" and done["status"]["reconciledAt"] == old
    healthy = wait_for(lambda: (o := kube.ok("GET", f"{APPS}/lag"))["status"]["health"]["status"] == "Healthy" and o)
    assert healthy["status"]["reconciledAt"] >= healthy["status"]["operationState"]["finishedAt"]

    failed = wait_for(lambda: ((o := kube.ok("GET", f"{APPS}/fails"))["status"]["operationState"]["phase"] == "Failed") and o)
    assert failed["status"]["operationState"]["message"] == "one or more objects failed to apply"
    assert "operation" not in failed and failed["status"]["sync"]["status"] == "OutOfSync"

    # stale-health: never advances on its own, only on a refresh request, whose annotation is removed
    wait_for(lambda: kube.ok("GET", f"{APPS}/stuck")["status"]["operationState"]["phase"] == "Succeeded")
    time.sleep(0.8)
    stuck = kube.ok("GET", f"{APPS}/stuck")
    assert stuck["status"]["reconciledAt"] == old and stuck["status"]["health"]["status"] == "Degraded"
    kube.ok("PATCH", f"{APPS}/stuck", {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}},
            "application/merge-patch+json")
    refreshed = wait_for(lambda: "argocd.argoproj.io/refresh" not in (o := kube.ok("GET", f"{APPS}/stuck"))["metadata"]["annotations"] and o)
    assert refreshed["status"]["health"]["status"] == "Healthy"
    assert refreshed["status"]["reconciledAt"] >= refreshed["status"]["operationState"]["finishedAt"]


def test_deployment_rollout_and_max_ready(kube: Kube) -> None:
    fast = {K + "pod-start-seconds": "0.05"}
    kube.seed(deployment("capped", replicas=3, annotations={**fast, K + "max-ready": "1"}),
              deployment("rolling", replicas=3, annotations=fast))
    capped = wait_for(lambda: (o := kube.ok("GET", f"{DEPLOY}/capped")).get("status", {}).get("readyReplicas") == 1 and o)
    time.sleep(0.4)
    capped = kube.ok("GET", f"{DEPLOY}/capped")
    assert capped["status"]["readyReplicas"] == 1 and capped["status"]["replicas"] == 3
    assert capped["status"]["unavailableReplicas"] == 2
    assert cond(capped, "Available")["status"] == "False"
    assert cond(capped, "Progressing")["reason"] == "ReplicaSetUpdated"
    done = wait_for(lambda: (o := kube.ok("GET", f"{DEPLOY}/rolling")).get("status", {}).get("readyReplicas") == 3 and o)
    assert done["status"]["availableReplicas"] == 3 and done["status"]["updatedReplicas"] == 3
    assert "unavailableReplicas" not in done["status"]
    assert cond(done, "Available")["status"] == "True" and cond(done, "Progressing")["reason"] == "NewReplicaSetAvailable"
    # template change: updatedReplicas drops and rolls back up
    kube.ok("PATCH", f"{DEPLOY}/rolling", [{"op": "replace", "path": "/spec/template/spec/containers/0/image",
                                            "value": "nginx:1.28"}], "application/json-patch+json")
    wait_for(lambda: (kube.ok("GET", f"{DEPLOY}/rolling").get("status", {}).get("updatedReplicas", 0)) < 3, step=0.02)
    rolled = wait_for(lambda: (o := kube.ok("GET", f"{DEPLOY}/rolling")).get("status", {}).get("updatedReplicas") == 3
                      and o["status"]["observedGeneration"] == o["metadata"]["generation"] and o)
    assert rolled["status"]["readyReplicas"] == 3
    # scale-down is immediate; zero fields are omitted
    kube.ok("PATCH", f"{DEPLOY}/rolling/scale", {"spec": {"replicas": 0}}, "application/merge-patch+json")
    zero = wait_for(lambda: "readyReplicas" not in (o := kube.ok("GET", f"{DEPLOY}/rolling"))["status"] and o)
    assert "replicas" not in zero["status"] and "availableReplicas" not in zero["status"]
    assert zero["status"]["observedGeneration"] == zero["metadata"]["generation"]


def test_statefulset_status(kube: Kube) -> None:
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "queue", "namespace": "jobs", "annotations": {K + "pod-start-seconds": "0.05"}},
           "spec": {"replicas": 3, "serviceName": "queue", "selector": {"matchLabels": {"app": "queue"}},
                    "template": {"metadata": {"labels": {"app": "queue"}},
                                 "spec": {"containers": [{"name": "q", "image": "redis:7"}]}}}}
    kube.seed(sts)
    path = "/apis/apps/v1/namespaces/jobs/statefulsets/queue"
    done = wait_for(lambda: (o := kube.ok("GET", path)).get("status", {}).get("readyReplicas") == 3 and o)
    st = done["status"]
    assert (st["replicas"], st["currentReplicas"], st["updatedReplicas"], st["availableReplicas"]) == (3, 3, 3, 3)
    assert st["currentRevision"] == st["updateRevision"]
    kube.ok("PATCH", path + "/scale", {"spec": {"replicas": 1}}, "application/merge-patch+json")
    down = wait_for(lambda: (o := kube.ok("GET", path))["status"]["replicas"] == 1 and o)
    assert down["status"]["readyReplicas"] == 1


def hpa(name: str, target: str, low: int, high: int, annotations: dict | None = None) -> dict:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": "web", "annotations": annotations or {}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "minReplicas": low, "maxReplicas": high}}


def test_hpa(kube: Kube) -> None:
    fast = {K + "pod-start-seconds": "0.05"}
    kube.seed(deployment("hpa-low", replicas=1, annotations=fast), deployment("hpa-idle", replicas=2, annotations=fast),
              deployment("hpa-high", replicas=9, annotations=fast))
    kube.seed(hpa("hpa-low", "hpa-low", 3, 5), hpa("hpa-idle", "hpa-idle", 1, 5, {K + "idle-downscale-seconds": "0.5"}),
              hpa("hpa-high", "hpa-high", 1, 4, {K + "idle-downscale-seconds": "never"}))
    raised = wait_for(lambda: (o := kube.ok("GET", f"{DEPLOY}/hpa-low"))["spec"]["replicas"] == 3 and o)
    assert raised["metadata"]["generation"] == 2
    status = wait_for(lambda: (o := kube.ok("GET", "/apis/autoscaling/v2/namespaces/web/horizontalpodautoscalers/hpa-low"))
                      ["status"].get("lastScaleTime") and o)["status"]
    assert status["desiredReplicas"] == 3
    wait_for(lambda: kube.ok("GET", f"{DEPLOY}/hpa-high")["spec"]["replicas"] == 4)
    # raising the target by hand without raising minReplicas does not last: the idle standby scales down
    kube.ok("PATCH", f"{DEPLOY}/hpa-idle/scale", {"spec": {"replicas": 4}}, "application/merge-patch+json")
    time.sleep(0.2)
    assert kube.ok("GET", f"{DEPLOY}/hpa-idle")["spec"]["replicas"] == 4
    wait_for(lambda: kube.ok("GET", f"{DEPLOY}/hpa-idle")["spec"]["replicas"] == 1, timeout=3)
    # raising minReplicas does
    kube.ok("PATCH", "/apis/autoscaling/v2/namespaces/web/horizontalpodautoscalers/hpa-idle",
            {"spec": {"minReplicas": 3}}, "application/merge-patch+json")
    wait_for(lambda: kube.ok("GET", f"{DEPLOY}/hpa-idle")["spec"]["replicas"] == 3)
    time.sleep(0.7)
    assert kube.ok("GET", f"{DEPLOY}/hpa-idle")["spec"]["replicas"] == 3
    assert kube.ok("GET", f"{DEPLOY}/hpa-high")["spec"]["replicas"] == 4  # never: no idle downscale


# -- faults --------------------------------------------------------------------------------------


def test_faults(kube: Kube) -> None:
    kube.seed(deployment("faulty"), deployment("bystander"))
    kube.ok("POST", "/_emulator/faults", {"conflicts": 2, "match": {"kind": "Deployment", "name": "faulty"}})
    patch = {"metadata": {"labels": {"f": "1"}}}
    assert kube.call("PATCH", f"{DEPLOY}/bystander", patch, "application/merge-patch+json")[0] == 200
    assert kube.call("GET", f"{DEPLOY}/faulty")[0] == 200  # reads are not writes
    status, answer, _ = kube.call("PATCH", f"{DEPLOY}/faulty/scale", {"spec": {"replicas": 2}}, "application/merge-patch+json")
    assert status == 409 and answer["reason"] == "Conflict"
    assert kube.call("PATCH", f"{DEPLOY}/faulty", patch, "application/merge-patch+json")[0] == 409
    assert kube.call("PATCH", f"{DEPLOY}/faulty", patch, "application/merge-patch+json")[0] == 200
    kube.ok("POST", "/_emulator/faults", {"unavailable_seconds": 0.5})
    status, answer, _ = kube.call("GET", "/version")
    assert status == 503 and answer["reason"] == "ServiceUnavailable" and answer["code"] == 503
    assert kube.ok("GET", "/_emulator/objects")  # the control API stays up
    wait_for(lambda: kube.call("GET", "/version")[0] == 200, timeout=3)
    kube.ok("POST", "/_emulator/faults", {"latency_seconds": 0.3})
    started = time.monotonic()
    kube.ok("GET", "/version")
    assert time.monotonic() - started >= 0.3
    kube.ok("POST", "/_emulator/faults", {"clear": True})
    started = time.monotonic()
    kube.ok("GET", "/version")
    assert time.monotonic() - started < 0.3
    log = kube.ok("GET", "/_emulator/requests")
    entry = next(e for e in reversed(log) if e["path"] == f"{DEPLOY}/faulty/scale")
    assert entry["method"] == "PATCH" and entry["status"] == 409 and entry["body"] == {"spec": {"replicas": 2}}
    assert entry["content_type"] == "application/merge-patch+json" and entry["auth"] == "static"


# -- TLS and EKS tokens ----------------------------------------------------------------------------


def test_tls_with_generated_ca() -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    with tempfile.TemporaryDirectory() as tmp:
        server = Kube("--tls-dir", tmp)
        try:
            assert server.ca == str(Path(tmp, "ca.pem").resolve())
            assert server.ok("GET", "/version")["gitVersion"].startswith("v1.")
            ca = x509.load_pem_x509_certificate(Path(tmp, "ca.pem").read_bytes())
            leaf = x509.load_pem_x509_certificate(Path(tmp, "server.pem").read_bytes())
            assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
            assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
            assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
            sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert "localhost" in sans.get_values_for_type(x509.DNSName)
            assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)][0] == "127.0.0.1"
            assert ExtendedKeyUsageOID.SERVER_AUTH in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            assert leaf.issuer == ca.subject
            # localhost verifies too; a client without the CA does not
            ctx = ssl.create_default_context(cafile=server.ca)
            conn = http.client.HTTPSConnection("localhost", server.port, context=ctx, timeout=5)
            conn.request("GET", "/version", headers={"Authorization": f"Bearer {TOKEN}"})
            assert conn.getresponse().status == 200
            conn.close()
            with pytest.raises(ssl.SSLCertVerificationError):
                plain = http.client.HTTPSConnection("127.0.0.1", server.port, context=ssl.create_default_context(),
                                                    timeout=5)
                plain.request("GET", "/version")
        finally:
            server.stop()


def eks_token(cluster: str = "lab", region: str = "us-west-2", headers: dict | None = None,
              url: str | None = None) -> str:
    """What `aws eks get-token` does: presign GetCallerIdentity with the cluster in x-k8s-aws-id."""
    session = botocore.session.get_session()
    session.set_credentials("AKIAEXAMPLE123456789", "secret")
    sts = session.create_client("sts", region_name=region)
    signer = RequestSigner(sts.meta.service_model.service_id, region, "sts", "v4", session.get_credentials(),
                           session.get_component("event_emitter"))
    params = {"method": "GET", "url": url or f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
              "body": {}, "headers": {"x-k8s-aws-id": cluster} if headers is None else headers, "context": {}}
    signed = signer.generate_presigned_url(params, region_name=region, expires_in=60, operation_name="")
    return "k8s-aws-v1." + base64.urlsafe_b64encode(signed.encode()).decode().rstrip("=")


def rewrite(token: str, edit: Callable[[str], str], pad: bool = False) -> str:
    encoded = token[len("k8s-aws-v1."):]
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    out = base64.urlsafe_b64encode(edit(url).encode()).decode()
    return "k8s-aws-v1." + (out if pad else out.rstrip("="))


def test_eks_tokens() -> None:
    good = eks_token()
    assert kube_emulator.check_eks_token(good)[0] is True
    global_token = eks_token(region="us-east-1", url="https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15")
    assert kube_emulator.check_eks_token(global_token)[0] is True
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=16)
    earlier = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    cases = {
        "wrong action": rewrite(good, lambda u: u.replace("GetCallerIdentity", "AssumeRole")),
        "missing header": eks_token(headers={}),
        "non-hex signature": rewrite(good, lambda u: re.sub(r"X-Amz-Signature=[0-9a-f]+", "X-Amz-Signature=" + "z" * 64, u)),
        "padding": rewrite(good, lambda u: u if len(u) % 3 else u.replace("X-Amz-Expires=60", "X-Amz-Expires=600"),
                           pad=True),
        "other host": rewrite(good, lambda u: u.replace("sts.us-west-2.amazonaws.com", "sts.us-west-2.evil.com")),
        "region mismatch": rewrite(good, lambda u: u.replace("sts.us-west-2.", "sts.eu-west-1.")),
        "long expiry": rewrite(good, lambda u: u.replace("X-Amz-Expires=60", "X-Amz-Expires=3600")),
        "extra parameter": rewrite(good, lambda u: u + "&Foo=bar"),
        "not https": rewrite(good, lambda u: u.replace("https://", "http://")),
    }
    reasons = {name: kube_emulator.check_eks_token(token) for name, token in cases.items()}
    for name, (accepted, reason) in reasons.items():
        assert accepted is False, (name, reason)
    assert "x-k8s-aws-id" in reasons["missing header"][1]
    assert "padding" in reasons["padding"][1] or "decode" in reasons["padding"][1]
    assert kube_emulator.check_eks_token(good, now=later) == (False, "X-Amz-Date is expired (15 minute expiration)")
    assert kube_emulator.check_eks_token(good, now=earlier)[1] == "X-Amz-Date is in the future"
    server = Kube("--eks-cluster", "lab")
    try:
        assert server.call("GET", "/version", token=good)[0] == 200
        status, answer, _ = server.call("GET", "/version", token=cases["wrong action"])
        assert status == 401 and answer["reason"] == "Unauthorized"
        assert server.call("GET", "/version", token=cases["missing header"])[0] == 401
        log = server.ok("GET", "/_emulator/requests")
        assert log[0]["auth"] == "eks" and "AKIAEXAMPLE123456789" in log[0]["auth_detail"]
        assert log[1]["auth"] == "rejected:unexpected action 'AssumeRole'"
        assert log[2]["auth"] == "rejected:x-k8s-aws-id is not a signed header"
    finally:
        server.stop()


# -- the lab seeds ---------------------------------------------------------------------------------


def test_lab_seeds_validate_and_controllers_write_valid_objects() -> None:
    schemas = kube_emulator.Schemas(kube_emulator.DEFAULT_KUBE_VERSION)
    seeds = {region: json.loads((ROOT / "lab" / "kube" / f"{region}.json").read_text())["items"]
             for region in ("us-east-1", "us-west-2")}
    for region, items in seeds.items():
        for obj in items:
            found = kube_emulator.find_kind(obj["apiVersion"], obj["kind"])
            assert found, (region, obj["kind"])
            schemas.check(found[0], obj["kind"], obj["apiVersion"], obj, obj["metadata"]["name"], "Strict")
        kinds = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in items}
        assert kinds >= {("GitRepository", "flux-system", "platform"), ("Kustomization", "flux-system", "infra"),
                         ("Kustomization", "flux-system", "apps"), ("Application", "argocd", "web"),
                         ("Deployment", "web", "api"), ("HorizontalPodAutoscaler", "web", "api"),
                         ("Deployment", "web", "frontend"), ("StatefulSet", "jobs", "worker")}
        for o in items:
            if o["kind"] in ("Deployment", "StatefulSet"):
                assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "shop"
    east = {(o["kind"], o["metadata"]["name"]): o for o in seeds["us-east-1"]}
    west = {(o["kind"], o["metadata"]["name"]): o for o in seeds["us-west-2"]}
    assert east[("Deployment", "api")]["spec"]["replicas"] == 4 and east[("HorizontalPodAutoscaler", "api")]["spec"]["minReplicas"] == 4
    assert west[("Deployment", "api")]["spec"]["replicas"] == 1 and west[("HorizontalPodAutoscaler", "api")]["spec"]["minReplicas"] == 1

    server = Kube("--seed", str(ROOT / "lab" / "kube" / "us-west-2.json"))
    try:
        fast = {"metadata": {"annotations": {K + "reconcile-seconds": "0.1", K + "sync-seconds": "0.1",
                                             K + "health-lag-seconds": "0.1", "reconcile.fluxcd.io/requestedAt": "now"}}}
        for path in ("/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps",
                     "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/platform",
                     "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/web"):
            server.ok("PATCH", path, fast, "application/merge-patch+json")
        server.ok("PATCH", "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/web",
                  {"operation": {"sync": {"revision": "c" * 40}, "initiatedBy": {"username": "failoverd"}}},
                  "application/merge-patch+json")
        server.ok("PATCH", "/apis/apps/v1/namespaces/web/deployments/frontend/scale", {"spec": {"replicas": 3}},
                  "application/merge-patch+json")
        server.ok("PATCH", "/apis/autoscaling/v2/namespaces/web/horizontalpodautoscalers/api",
                  {"spec": {"minReplicas": 3}}, "application/merge-patch+json")
        wait_for(lambda: server.ok("GET", "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps")
                 ["status"].get("lastHandledReconcileAt") == "now")
        wait_for(lambda: server.ok("GET", "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/web")
                 ["status"]["operationState"]["phase"] == "Succeeded")
        wait_for(lambda: server.ok("GET", "/apis/apps/v1/namespaces/web/deployments/api").get("status", {}).get("readyReplicas") == 3)
        wait_for(lambda: server.ok("GET", "/apis/apps/v1/namespaces/web/deployments/frontend").get("status", {}).get("readyReplicas") == 3)
        for obj in server.ok("GET", "/_emulator/objects")["items"]:
            found = kube_emulator.find_kind(obj["apiVersion"], obj["kind"])
            assert found
            schemas.check(found[0], obj["kind"], obj["apiVersion"], obj, obj["metadata"]["name"], "Strict")
    finally:
        server.stop()
    assert "refused" not in server.stderr()


def test_everything_the_shared_emulator_holds_validates(kube: Kube) -> None:
    """Last of the module: whatever the tests and the controllers left in the shared emulator passes
    the strict schemas (unknown fields included)."""
    schemas = kube_emulator.Schemas(kube_emulator.DEFAULT_KUBE_VERSION)
    items = kube.ok("GET", "/_emulator/objects")["items"]
    assert len(items) > 30
    for obj in items:
        found = kube_emulator.find_kind(obj["apiVersion"], obj["kind"])
        assert found, obj["kind"]
        schemas.check(found[0], obj["kind"], obj["apiVersion"], obj, obj["metadata"]["name"], "Strict")
    kube.stop()
    assert "refused" not in kube.stderr() and "Traceback" not in kube.stderr()
