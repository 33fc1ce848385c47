#!/usr/bin/env python3
"""An emulated Kubernetes API server (one cluster) for failoverd's test bed and ``make lab``.

No real kube-apiserver can be installed on the test machines (no etcd, no release binaries, no
network beyond the package registries), so this is a faithful emulation of the parts failoverd
uses, in one Python process: the REST conventions of the apiserver (discovery, CRUD, LIST with
selectors, three patch types, status and scale subresources, optimistic concurrency, schema
validation) plus small simulated controllers (Flux, Argo CD, Deployment/StatefulSet, HPA).

    .venv/bin/python tests/support/kube_emulator.py --host 127.0.0.1 --port 0 \\
        [--tls-dir DIR] [--token TOKEN]... [--eks-cluster NAME] [--seed FILE.json]... \\
        [--ignore-stdin] [--tick 0.1] [--kube-version 1.37.0] [--verbose]

* Once listening it prints exactly one line ``KUBE_READY port=<N> ca=<abs path of ca.pem, or ->``
  to stdout (flushed); nothing else goes to stdout. ``--port 0`` picks a free port.
* It exits when stdin reaches EOF (``--ignore-stdin`` turns that off), on SIGTERM and SIGINT.
* ``--tls-dir DIR``: a fresh self-signed CA (``ca.pem``: basicConstraints CA:true, keyUsage
  keyCertSign) and a server certificate it signs (``server.pem``/``server-key.pem``: not a CA,
  SANs IP 127.0.0.1, IP ::1, DNS localhost, extendedKeyUsage serverAuth) are written there and
  the server speaks HTTPS (HTTP/1.1 via ALPN). Without it: plain HTTP.
* Auth: every request outside ``/_emulator/`` needs ``Authorization: Bearer <t>``: a ``--token``
  value, or with ``--eks-cluster NAME`` an EKS token shaped like ``aws eks get-token``'s (see
  ``check_eks_token``: the shape is checked as strictly as aws-iam-authenticator does, but the
  signature cannot be checked here: there is no STS to send the presigned request to; nor can
  the cluster name, which is only signed, never carried: the emulator requires that
  ``x-k8s-aws-id`` is among the signed headers). Base64 padding is rejected, like
  aws-iam-authenticator (it decodes with RawURLEncoding). Failures: 401 ``Unauthorized`` Status.
* ``--kube-version``: the served ``gitVersion`` and the schema set of ``kubernetes-validate``
  used for the built-in kinds; default 1.37.0, the newest the pinned package ships.

What is emulated
----------------
Discovery (/version, /api, /api/v1, /apis, /apis/<g>, /apis/<g>/<v>); the resources of
``RESOURCES`` below; GET, LIST (namespaced and all-namespaces; ``labelSelector`` with ``=``,
``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``; ``fieldSelector`` on metadata.name and
metadata.namespace; ``limit``/``continue``), POST, PUT, PATCH (merge, JSON patch, strategic
merge for built-in kinds), DELETE (finalizers honoured: deletionTimestamp set until they are
removed; DeleteOptions preconditions), deletecollection, ``dryRun=All``, ``fieldValidation``.
Bookkeeping like the apiserver: one resourceVersion counter per cluster, uid and
creationTimestamp on create, metadata.generation (CRDs: any change outside metadata, and outside
status when the CRD has a status subresource: so an Argo CD Application, which has none, bumps
its generation on status writes, as on a real cluster; built-in kinds: spec changes), status
reset on create and ignored on main-resource writes for kinds with a status subresource, status
subresource writes that keep only status. CRDs refuse an unconditional PUT (no
resourceVersion), built-in kinds allow it. Objects in a namespace need the Namespace to exist
(404 otherwise); seeding through ``/_emulator/objects`` creates missing namespaces.

Validation: every object is validated before it is stored (seeded, created, updated, patched,
written by a controller): built-in kinds against Kubernetes' own OpenAPI-derived JSON schemas
shipped by the PyPI package ``kubernetes-validate`` (strict variant), Flux and Argo CD kinds
against the JSON schemas in ``kube_schemas/`` (hand-written from the upstream CRDs, see their
``$comment``), failoverd's own kinds against the CRDs it ships (``deploy/base/crds.yaml``, loaded
at start), plus the name/label rules and a few cross-field rules of the apiserver (selector
matches template labels, selector immutable, HPA min <= max, replicas >= 0). Unknown fields are
pruned like the apiserver does (``fieldValidation`` Warn, the default: ``Warning`` header;
Ignore: silently) or refused with 400 (``fieldValidation=Strict``). Other errors: 422 Invalid
with ``details.causes`` naming the fields, nothing stored. CRD schema defaults are applied.

Not emulated: WATCH (``?watch=true`` answers 405 MethodNotAllowed: failoverd polls), server-side
apply (``application/apply-patch+yaml`` answers 415), strategic merge on CRDs (415, like the
apiserver), strategic merge beyond merge-by-key of the well-known lists (containers, env,
volumes, ports, conditions, ...) and the ``$patch``/``$deleteFromPrimitiveList`` directives,
protobuf, YAML bodies, table output, managedFields, admission webhooks, CEL rules, RBAC (any
accepted token may do anything), pods/ReplicaSets (the workload controller only computes
status), garbage collection (deleting a Namespace deletes its objects at once), OpenAPI docs.

Test control API (no auth, JSON) under ``/_emulator/``
------------------------------------------------------
* ``POST /_emulator/objects``: one object or ``{"items": [...]}``; create or replace (validated,
  all or nothing; the status given is kept; the controllers start from it; missing namespaces
  are created). Answers ``{"items": [stored]}``.
* ``GET /_emulator/objects``: ``{"items": [...]}``, every stored object.
* ``POST /_emulator/faults``: ``{"conflicts": N, "match": {"kind", "namespace", "name"}}`` (any
  key optional; kind is the Kind or the plural): the next N PUT/PATCH requests (subresources
  included) on matching objects answer 409 Conflict; ``{"unavailable_seconds": S}``: every
  non-/_emulator request answers 503 ServiceUnavailable for S seconds; ``{"latency_seconds": S}``:
  every non-/_emulator response is delayed by S seconds (0 clears); ``{"clear": true}``.
* ``GET /_emulator/requests``: every non-/_emulator request so far, in order:
  ``[{"method", "path", "query" (dict), "content_type", "body" (parsed JSON or null), "status",
  "auth": "static" | "eks" | "rejected:<reason>", "auth_detail"}]``. ``DELETE`` clears it.

Simulated controllers
---------------------
A background thread ticks every ``--tick`` seconds. Knobs are annotations
``emulator.failoverd.test/<knob>`` on the object (annotations are free-form, so objects stay
schema-valid):

* Flux (GitRepository, HelmRepository, OCIRepository, Kustomization, HelmRelease): an object
  needs reconciling when the ``reconcile.fluxcd.io/requestedAt`` annotation differs from
  ``status.lastHandledReconcileAt`` or ``status.observedGeneration`` differs from
  ``metadata.generation``; ``spec.suspend: true`` objects are ignored. Start: ``Reconciling=True``
  (Progressing) and ``Ready=Unknown`` (Progressing, "Reconciliation in progress"). After
  ``reconcile-seconds`` (1.0): lastHandledReconcileAt = the token, observedGeneration =
  generation, Reconciling removed, ``Ready=True`` ReconciliationSucceeded "Applied revision:
  main@sha1:<40 hex>" (``revision`` knob overrides the revision). Knobs: ``stale-ready: "true"``
  (keep the old Ready=True, old observedGeneration, while reconciling), ``handled-early: "true"``
  (lastHandledReconcileAt written at the start), ``never-finishes: "true"``,
  ``ready-false-message: "<msg>"`` [+ ``ready-false-reason`` (ReconciliationFailed)]: the
  reconcile fails like Flux's do: Ready=False with that message and the condition's
  observedGeneration = generation, lastHandledReconcileAt = the token, but status.observedGeneration
  is NOT advanced and Reconciling stays (reason ProgressingWithRetry); a failed attempt is retried
  only after ``retry-seconds`` (default: never) or when the token or the generation changes.
* Argo CD Application: ``operation`` set and no operation Running: ``status.operationState``
  {operation, phase Running, message, startedAt}; after ``sync-seconds`` (1.0): Succeeded
  (``sync-fail-message`` -> Failed with that message), finishedAt, syncResult, ``operation``
  removed, sync Synced with the revision (success), a history entry. Health is stale: health and
  reconciledAt keep their values until ``health-lag-seconds`` (2.0) after finishedAt, then
  reconciledAt = now and health = ``health-after-sync`` (Healthy). ``stale-health: "true"``: they
  never advance on their own. The ``argocd.argoproj.io/refresh`` annotation (normal|hard) is always
  honoured: reconciledAt = now, health computed, the annotation removed.
* Deployment / StatefulSet: status.observedGeneration follows after ~0.2 s; pods become ready one
  at a time every ``pod-start-seconds`` (0.5) up to spec.replicas, capped by ``max-ready``;
  scale-down is immediate; a pod template change drops updatedReplicas to 0 and rolls them up;
  Deployment conditions Available/Progressing (progressDeadlineSeconds honoured); zero fields
  omitted like the real API.
* HorizontalPodAutoscaler (autoscaling/v2): keeps the scaleTargetRef's spec.replicas within
  [minReplicas, maxReplicas]; a target above minReplicas for ``idle-downscale-seconds`` (3.0;
  ``never`` disables) is scaled down to minReplicas (an idle standby); a target at 0 replicas is
  left alone (ScalingDisabled), like the real HPA.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import os
import random
import re
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

import jsonpatch
import jsonpointer
import jsonschema
import referencing
import referencing.jsonschema

HERE = Path(__file__).resolve().parent
SCHEMA_DIR = HERE / "kube_schemas"
KNOB = "emulator.failoverd.test/"
FLUX_REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
ARGO_REFRESH = "argocd.argoproj.io/refresh"
DEFAULT_KUBE_VERSION = "1.37.0"
LOG_LIMIT = 200_000

Json = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


def rfc3339(t: float | None = None) -> str:
    """RFC 3339, UTC, second precision, ``Z``: metav1.Time."""
    moment = dt.datetime.fromtimestamp(time.time() if t is None else t, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


# --------------------------------------------------------------------------------------------
# Errors: metav1.Status
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: Json | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> Json:
        body: Json = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": self.message, "reason": self.reason}
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


# --------------------------------------------------------------------------------------------
# Resource types
# --------------------------------------------------------------------------------------------


@dataclass
class ResourceType:
    group: str
    versions: list[str]  # served; the first is the preferred and storage version
    plural: str
    singular: str
    kind: str
    namespaced: bool = True
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    status_sub: bool = False
    scale_sub: bool = False
    crd: bool = False
    # "spec": generation follows spec changes; "nonmeta": every change outside metadata (and
    # outside status when there is a status subresource); None: no generation at all.
    generation: str | None = "spec"

    @property
    def storage_version(self) -> str:
        return self.versions[0]

    def api_version(self, version: str | None = None) -> str:
        version = version or self.storage_version
        return f"{self.group}/{version}" if self.group else version

    @property
    def group_resource(self) -> str:
        """``deployments.apps``: how the apiserver names a resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update"]
FLUX_KINDS = ("GitRepository", "HelmRepository", "OCIRepository", "Kustomization", "HelmRelease")

RESOURCES: list[ResourceType] = [
    ResourceType("", ["v1"], "namespaces", "namespace", "Namespace", namespaced=False,
                 short_names=["ns"], status_sub=True, generation=None),
    ResourceType("", ["v1"], "events", "event", "Event", short_names=["ev"], generation=None),
    ResourceType("apps", ["v1"], "deployments", "deployment", "Deployment", short_names=["deploy"],
                 categories=["all"], status_sub=True, scale_sub=True),
    ResourceType("apps", ["v1"], "statefulsets", "statefulset", "StatefulSet", short_names=["sts"],
                 categories=["all"], status_sub=True, scale_sub=True),
    ResourceType("autoscaling", ["v2"], "horizontalpodautoscalers", "horizontalpodautoscaler",
                 "HorizontalPodAutoscaler", short_names=["hpa"], categories=["all"], status_sub=True),
    ResourceType("coordination.k8s.io", ["v1"], "leases", "lease", "Lease", generation=None),
    ResourceType("source.toolkit.fluxcd.io", ["v1"], "gitrepositories", "gitrepository",
                 "GitRepository", short_names=["gitrepo"], categories=["all", "fluxcd", "fluxcd-sources"],
                 status_sub=True, crd=True, generation="nonmeta"),
    ResourceType("source.toolkit.fluxcd.io", ["v1"], "helmrepositories", "helmrepository",
                 "HelmRepository", short_names=["helmrepo"], categories=["all", "fluxcd", "fluxcd-sources"],
                 status_sub=True, crd=True, generation="nonmeta"),
    ResourceType("source.toolkit.fluxcd.io", ["v1", "v1beta2"], "ocirepositories", "ocirepository",
                 "OCIRepository", short_names=["ocirepo"], categories=["all", "fluxcd", "fluxcd-sources"],
                 status_sub=True, crd=True, generation="nonmeta"),
    ResourceType("kustomize.toolkit.fluxcd.io", ["v1"], "kustomizations", "kustomization",
                 "Kustomization", short_names=["ks"], categories=["all", "fluxcd", "fluxcd-appliers"],
                 status_sub=True, crd=True, generation="nonmeta"),
    ResourceType("helm.toolkit.fluxcd.io", ["v2"], "helmreleases", "helmrelease", "HelmRelease",
                 short_names=["hr"], categories=["all", "fluxcd", "fluxcd-appliers"], status_sub=True,
                 crd=True, generation="nonmeta"),
    ResourceType("argoproj.io", ["v1alpha1"], "applications", "application", "Application",
                 short_names=["app", "apps"], status_sub=False, crd=True, generation="nonmeta"),
]


# failoverd's own CRDs (its run journal in the cluster) are served from the manifest it ships,
# so what the emulator validates is exactly what a cluster with that manifest applied would.
FAILOVERD_CRDS = HERE.parent.parent / "deploy" / "base" / "crds.yaml"
CRD_SCHEMAS: dict[tuple[str, str], Json] = {}


def structural_to_json_schema(schema: Json) -> Json:
    """An OpenAPI v3 structural schema as a JSON schema: objects with ``properties`` and neither
    ``additionalProperties`` nor ``x-kubernetes-preserve-unknown-fields`` are closed, because the
    apiserver prunes (or, with ``fieldValidation=Strict``, refuses) every other field."""
    out: Json = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {k: structural_to_json_schema(v) for k, v in value.items()}
        elif key == "items" and isinstance(value, dict):
            out[key] = structural_to_json_schema(value)
        elif key == "additionalProperties" and isinstance(value, dict):
            out[key] = structural_to_json_schema(value)
        elif key.startswith("x-kubernetes-"):
            continue
        else:
            out[key] = value
    if (schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def load_failoverd_crds(path: Path = FAILOVERD_CRDS) -> None:
    import yaml  # noqa: PLC0415  (PyYAML is in the test bed's requirements)

    for doc in yaml.safe_load_all(path.read_text()):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        names = spec["names"]
        versions = [v["name"] for v in spec["versions"] if v.get("served", True)]
        storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
        versions.sort(key=lambda v: v != storage)
        RESOURCES.append(ResourceType(
            spec["group"], versions, names["plural"], names.get("singular", names["kind"].lower()),
            names["kind"], namespaced=spec["scope"] == "Namespaced",
            short_names=names.get("shortNames", []), categories=names.get("categories", []),
            status_sub="status" in (spec["versions"][0].get("subresources") or {}), crd=True,
            generation="nonmeta"))
        for v in spec["versions"]:
            CRD_SCHEMAS[(names["kind"], f"{spec['group']}/{v['name']}")] = structural_to_json_schema(
                v["schema"]["openAPIV3Schema"])


load_failoverd_crds()


def find_resource(group: str, version: str, plural: str) -> ResourceType | None:
    for rt in RESOURCES:
        if rt.group == group and rt.plural == plural and version in rt.versions:
            return rt
    return None


def find_kind(api_version: str, kind: str) -> tuple[ResourceType, str] | None:
    group, _, version = api_version.rpartition("/")
    for rt in RESOURCES:
        if rt.group == group and rt.kind == kind and version in rt.versions:
            return rt, version
    return None


def resource_by_name(name: str) -> ResourceType | None:
    for rt in RESOURCES:
        if name in (rt.kind, rt.plural, rt.singular):
            return rt
    return None


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = DNS1123_LABEL + r"(\." + DNS1123_LABEL + r")*"
LABEL_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"

FORMAT_CHECKER = jsonschema.FormatChecker(formats=())


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _check_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
        raise ValueError("not RFC 3339")
    return True


def strip_nulls(value: Any) -> Any:
    """The apiserver drops null fields (nullable=false) before validation and defaulting."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


def field_path(path: Any) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def go_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))[:200]
    return json.dumps(value)


def json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number"}.get(type(value), "null")


class Invalid:
    """Collects field errors like k8s.io/apimachinery/pkg/util/validation/field."""

    def __init__(self) -> None:
        self.causes: list[Json] = []

    def add(self, reason: str, field_name: str, message: str) -> None:
        self.causes.append({"reason": reason, "message": message, "field": field_name})

    def required(self, f: str) -> None:
        self.add("FieldValueRequired", f, "Required value")

    def invalid(self, f: str, value: Any, detail: str) -> None:
        self.add("FieldValueInvalid", f, f"Invalid value: {go_value(value)}: {detail}")

    def forbidden(self, f: str, detail: str) -> None:
        self.add("FieldValueForbidden", f, f"Forbidden: {detail}")

    def raise_if_any(self, rt: ResourceType, name: str) -> None:
        if not self.causes:
            return
        parts = [f"{c['field']}: {c['message']}" for c in self.causes]
        summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
        details: Json = {"name": name, "kind": rt.kind, "causes": self.causes}
        if rt.group:
            details = {"name": name, "group": rt.group, "kind": rt.kind, "causes": self.causes}
        raise ApiError(422, "Invalid", f'{rt.group_kind} "{name}" is invalid: {summary}', details)


class Schemas:
    """Validators per (ResourceType, version): kubernetes-validate's strict schemas for built-in
    kinds, ``kube_schemas/`` for the CRDs; compiled once."""

    def __init__(self, kube_version: str):
        import kubernetes_validate  # noqa: PLC0415  (heavy; only the server needs it)

        root = Path(kubernetes_validate.__file__).resolve().parent / "kubernetes-json-schema"
        self.builtin_dir = root / f"v{kube_version}-local-strict"
        if not self.builtin_dir.is_dir():
            available = sorted(p.name for p in root.iterdir() if p.name.endswith("-local-strict"))
            raise SystemExit(f"kube_emulator: kubernetes-validate has no schemas for {kube_version} "
                             f"(it has {', '.join(available)})")
        self.kube_version = kube_version
        self._registry: referencing.Registry | None = None
        self._cache: dict[tuple[str, str], tuple[jsonschema.protocols.Validator, Json]] = {}
        self._lock = threading.Lock()

    def _builtin_registry(self) -> referencing.Registry:
        if self._registry is None:
            defs = json.loads((self.builtin_dir / "_definitions.json").read_text())
            self._registry = referencing.Registry().with_resource(
                defs["$id"], referencing.Resource.from_contents(defs))
        return self._registry

    def validator(self, kind: str, api_version: str) -> tuple[jsonschema.protocols.Validator, Json]:
        key = (kind, api_version)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            group, _, version = api_version.rpartition("/")
            found = find_kind(api_version, kind)
            if (kind, api_version) in CRD_SCHEMAS:
                schema = CRD_SCHEMAS[(kind, api_version)]
                validator = jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
            elif found is not None and found[0].crd:
                schema = json.loads((SCHEMA_DIR / f"{kind.lower()}-{group}-{version}.json").read_text())
                validator = jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
            else:
                prefix = group.split(".")[0]
                name = f"{kind.lower()}-{prefix}-{version}.json" if group else f"{kind.lower()}-{version}.json"
                schema = json.loads((self.builtin_dir / name).read_text())
                validator = jsonschema.Draft202012Validator(
                    schema, registry=self._builtin_registry(), format_checker=FORMAT_CHECKER)
            self._cache[key] = (validator, schema)
            return validator, schema

    def check(self, rt: ResourceType | None, kind: str, api_version: str, obj: Json, name: str,
              field_validation: str = "Warn") -> tuple[Json, list[str]]:
        """Prunes unknown fields (or refuses them when Strict), applies CRD defaults, validates.
        Returns the object to store and the warnings."""
        obj = strip_nulls(obj)
        validator, schema = self.validator(kind, api_version)
        if rt is not None and rt.crd:
            apply_defaults(schema, schema, obj)
        warnings: list[str] = []
        for _ in range(20):
            errors = list(validator.iter_errors(obj))
            unknown = [e for e in errors if e.validator == "additionalProperties" and e.validator_value is False]
            if not unknown:
                break
            for err in unknown:
                allowed = set((err.schema.get("properties") or {}).keys())
                target = err.instance
                if not isinstance(target, dict):
                    continue
                for key in sorted(set(target) - allowed):
                    path = field_path(list(err.absolute_path) + [key])
                    if field_validation == "Strict":
                        raise bad_request(f'strict decoding error: unknown field "{path}"')
                    warnings.append(f'unknown field "{path}"')
                    container: Any = obj
                    for part in err.absolute_path:
                        container = container[part]
                    container.pop(key, None)
        else:
            errors = list(validator.iter_errors(obj))
        invalid = Invalid()
        for err in sorted(errors, key=lambda e: field_path(e.absolute_path)):
            describe_error(invalid, err)
        target_rt = rt or ResourceType("", ["v1"], kind.lower() + "s", kind.lower(), kind)
        invalid.raise_if_any(target_rt, name)
        return obj, (warnings if field_validation != "Ignore" else [])


def describe_error(invalid: Invalid, err: jsonschema.ValidationError) -> None:
    path = field_path(err.absolute_path)
    value = err.instance
    v = err.validator
    if v == "required":
        m = re.match(r"'(.+)' is a required property", err.message)
        invalid.required(f"{path}.{m.group(1)}" if path and m else (m.group(1) if m else path))
    elif v == "type":
        expected = err.validator_value
        if isinstance(expected, list):
            expected = [t for t in expected if t != "null"][0]
        invalid.add("FieldValueTypeInvalid", path,
                    f'Invalid value: "{json_type(value)}": {path} in body must be of type {expected}: '
                    f'"{json_type(value)}"')
    elif v in ("enum", "const"):
        allowed = err.validator_value if v == "enum" else [err.validator_value]
        supported = ", ".join(go_value(a) for a in allowed)
        invalid.add("FieldValueNotSupported", path,
                    f"Unsupported value: {go_value(value)}: supported values: {supported}")
    elif v == "pattern":
        invalid.invalid(path, value, f"{path} in body should match '{err.validator_value}'")
    elif v == "maxLength":
        invalid.add("FieldValueTooLong", path, f"Too long: may not be more than {err.validator_value} bytes")
    elif v == "minLength":
        invalid.invalid(path, value, f"{path} in body should be at least {err.validator_value} chars long")
    elif v == "minimum":
        invalid.invalid(path, value, f"{path} in body should be greater than or equal to {err.validator_value}")
    elif v == "maximum":
        invalid.invalid(path, value, f"{path} in body should be less than or equal to {err.validator_value}")
    elif v == "format":
        invalid.invalid(path, value, f'{path} in body must be of type {err.validator_value}: {go_value(value)}')
    else:
        invalid.invalid(path, value, err.message)


def resolve_ref(root: Json, schema: Json) -> Json:
    while isinstance(schema, dict) and "$ref" in schema and schema["$ref"].startswith("#/"):
        target: Any = root
        for part in schema["$ref"][2:].split("/"):
            target = target[part]
        schema = target
    return schema


def apply_defaults(root: Json, schema: Json, value: Any) -> None:
    """Structural-schema defaulting, as for CRDs: a missing property with a default gets it
    (only inside objects that exist)."""
    schema = resolve_ref(root, schema)
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            sub_r = resolve_ref(root, sub)
            if key not in value and "default" in sub_r:
                value[key] = copy.deepcopy(sub_r["default"])
            if key in value:
                apply_defaults(root, sub_r, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(root, schema["items"], item)


def validate_meta(rt: ResourceType, obj: Json, invalid: Invalid) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    pattern = DNS1123_LABEL if rt.kind == "Namespace" else DNS1123_SUBDOMAIN
    if not name:
        invalid.add("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")
    elif not isinstance(name, str) or len(name) > (63 if rt.kind == "Namespace" else 253) \
            or not re.fullmatch(pattern, name):
        what = "RFC 1123 label" if rt.kind == "Namespace" else "RFC 1123 subdomain"
        invalid.invalid("metadata.name", name,
                        f"a lowercase {what} must consist of lower case alphanumeric characters, '-' or '.', "
                        f"and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
                        f"for validation is '{pattern}')")
    for key, value in (meta.get("labels") or {}).items():
        prefix, _, local = key.rpartition("/")
        if (prefix and (len(prefix) > 253 or not re.fullmatch(DNS1123_SUBDOMAIN, prefix))) \
                or len(local) > 63 or not re.fullmatch(QUALIFIED_NAME, local):
            invalid.invalid("metadata.labels", key, "name part must consist of alphanumeric characters, '-', '_' "
                            "or '.', and must start and end with an alphanumeric character")
        if not isinstance(value, str) or len(value) > 63 or not re.fullmatch(LABEL_VALUE, value):
            invalid.invalid("metadata.labels", value, "a valid label must be an empty string or consist of "
                            "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                            "alphanumeric character")
    for key in (meta.get("annotations") or {}):
        prefix, _, local = key.rpartition("/")
        if (prefix and not re.fullmatch(DNS1123_SUBDOMAIN, prefix)) or len(local) > 63 \
                or not re.fullmatch(QUALIFIED_NAME, local):
            invalid.invalid("metadata.annotations", key, "name part must consist of alphanumeric characters, "
                            "'-', '_' or '.', and must start and end with an alphanumeric character")


def validate_semantics(rt: ResourceType, obj: Json, old: Json | None, invalid: Invalid) -> None:
    """The cross-field rules of the apiserver (and CEL rules of the CRDs) that failoverd's
    writes could break."""
    spec = obj.get("spec") or {}
    if rt.kind in ("Deployment", "StatefulSet"):
        if isinstance(spec.get("replicas"), int) and spec["replicas"] < 0:
            invalid.invalid("spec.replicas", spec["replicas"], "must be greater than or equal to 0")
        selector = spec.get("selector")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if isinstance(selector, dict):
            if not selector.get("matchLabels") and not selector.get("matchExpressions"):
                invalid.invalid("spec.selector", selector, "empty selector is invalid for deployment")
            elif not selector_matches(selector, labels):
                invalid.invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
        if old is not None and (old.get("spec") or {}).get("selector") != selector:
            invalid.invalid("spec.selector", selector, "field is immutable")
    elif rt.kind == "HorizontalPodAutoscaler":
        lo, hi = spec.get("minReplicas", 1), spec.get("maxReplicas")
        if isinstance(lo, int) and lo < 1:
            invalid.invalid("spec.minReplicas", lo, "must be greater than or equal to 1")
        if isinstance(lo, int) and isinstance(hi, int) and hi < lo:
            invalid.invalid("spec.maxReplicas", hi, "must be greater than or equal to `minReplicas`")
    elif rt.kind == "HelmRelease":
        if ("chart" in spec) == ("chartRef" in spec):
            invalid.invalid("spec", "object", "either chart or chartRef must be set")


def default_builtin(rt: ResourceType, obj: Json) -> None:
    """The defaults of the built-in kinds that the emulated controllers read."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if rt.kind == "Deployment":
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("type", "RollingUpdate")
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
    elif rt.kind == "StatefulSet":
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if strategy.get("type") == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {"partition": 0})
    elif rt.kind == "HorizontalPodAutoscaler":
        spec.setdefault("minReplicas", 1)
    elif rt.kind == "Namespace":
        spec.setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Terminating" if (obj.get("metadata") or {}).get("deletionTimestamp")
                         else "Active"}
    if rt.kind in ("Deployment", "StatefulSet"):
        pod = ((spec.get("template") or {}).get("spec"))
        if isinstance(pod, dict):
            pod.setdefault("restartPolicy", "Always")
            pod.setdefault("dnsPolicy", "ClusterFirst")
            pod.setdefault("terminationGracePeriodSeconds", 30)
            pod.setdefault("schedulerName", "default-scheduler")
            for c in pod.get("containers") or []:
                if isinstance(c, dict):
                    c.setdefault("terminationMessagePath", "/dev/termination-log")
                    c.setdefault("terminationMessagePolicy", "File")
                    c.setdefault("imagePullPolicy", "Always" if str(c.get("image", "")).endswith(":latest")
                                 or ":" not in str(c.get("image", "")) else "IfNotPresent")


# --------------------------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------------------------


def split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


LABEL_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"


def parse_label_selector(text: str) -> list[tuple[str, str, list[str]]]:
    """``a=b,c!=d,e in (f,g),h notin (i),j,!k`` into (key, op, values)."""
    reqs: list[tuple[str, str, list[str]]] = []
    for part in split_top_level(text):
        if m := re.fullmatch(rf"({LABEL_KEY})\s+(in|notin)\s*\(([^()]*)\)", part):
            values = [v.strip() for v in m.group(3).split(",") if v.strip()]
            if not values:
                raise bad_request(f"unable to parse requirement: for 'in', 'notin' operators, values set can't be empty")
            reqs.append((m.group(1), m.group(2), values))
        elif m := re.fullmatch(rf"({LABEL_KEY})\s*(==|!=|=)\s*({LABEL_VALUE})", part):
            op = {"==": "=", "=": "=", "!=": "!="}[m.group(2)]
            reqs.append((m.group(1), op, [m.group(3)]))
        elif m := re.fullmatch(rf"!\s*({LABEL_KEY})", part):
            reqs.append((m.group(1), "!", []))
        elif re.fullmatch(LABEL_KEY, part):
            reqs.append((part, "exists", []))
        else:
            raise bad_request(f"unable to parse requirement: found '{part}', expected: valid label selector")
    return reqs


def labels_match(reqs: list[tuple[str, str, list[str]]], labels: dict[str, str]) -> bool:
    for key, op, values in reqs:
        present = key in labels
        if op == "=" and labels.get(key) != values[0]:
            return False
        if op == "!=" and present and labels[key] == values[0]:
            return False
        if op == "in" and (not present or labels[key] not in values):
            return False
        if op == "notin" and present and labels[key] in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
    return True


def selector_matches(selector: Json, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector against labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    reqs = [(e["key"], ops.get(e.get("operator"), "?"), e.get("values") or [])
            for e in selector.get("matchExpressions") or []]
    return labels_match(reqs, labels)


def selector_string(selector: Json) -> str:
    """metav1.LabelSelectorAsSelector(...).String(): the form of Scale's status.selector."""
    parts = []
    reqs: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        reqs.append((key, f"{key}={value}"))
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e.get("operator"), sorted(e.get("values") or [])
        text = {"In": f"{key} in ({','.join(values)})", "NotIn": f"{key} notin ({','.join(values)})",
                "Exists": key, "DoesNotExist": f"!{key}"}.get(op, key)
        reqs.append((key, text))
    for _, text in sorted(reqs, key=lambda r: r[0]):
        parts.append(text)
    return ",".join(parts)


def parse_field_selector(text: str) -> list[tuple[str, bool, str]]:
    out = []
    for part in split_top_level(text):
        m = re.fullmatch(r"([A-Za-z.]+)\s*(==|!=|=)\s*(.*)", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        if m.group(1) not in ("metadata.name", "metadata.namespace"):
            raise bad_request(f'field label not supported: {m.group(1)}')
        out.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return out


# --------------------------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


STRATEGIC_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
                  "volumes": "name", "env": "name", "volumeMounts": "mountPath", "ports": "containerPort",
                  "imagePullSecrets": "name", "conditions": "type", "hostAliases": "ip",
                  "volumeClaimTemplates": None, "topologySpreadConstraints": "topologyKey"}


def strategic_merge(target: Any, patch: Any) -> Any:
    """Strategic merge patch, simplified: merge semantics, plus merge-by-key for the well-known
    lists of STRATEGIC_KEYS, ``$patch: replace|delete`` on maps and list items, and
    ``$setElementOrder``/``$retainKeys`` directives accepted and ignored."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        merge_key = STRATEGIC_KEYS.get(key)
        current = result.get(key)
        if isinstance(value, list) and merge_key and isinstance(current, list):
            merged = [copy.deepcopy(item) for item in current]
            for item in value:
                if not isinstance(item, dict) or merge_key not in item:
                    merged.append(copy.deepcopy(item))
                    continue
                index = next((i for i, c in enumerate(merged)
                              if isinstance(c, dict) and c.get(merge_key) == item[merge_key]), None)
                if item.get("$patch") == "delete":
                    if index is not None:
                        merged.pop(index)
                elif index is None:
                    merged.append({k: v for k, v in item.items() if k != "$patch"})
                else:
                    merged[index] = strategic_merge(merged[index], item)
            result[key] = merged
        else:
            merged_value = strategic_merge(current, value)
            if merged_value is None:
                result.pop(key, None)
            else:
                result[key] = merged_value
    return result


JSON_PATCH_OPS = {"add", "remove", "replace", "move", "copy", "test"}


def json_patch(target: Json, ops: Any) -> Json:
    """RFC 6902; a malformed patch is a 400, a failing operation (``test`` included) a 422."""
    if not isinstance(ops, list) or not all(
            isinstance(op, dict) and op.get("op") in JSON_PATCH_OPS and isinstance(op.get("path"), str)
            for op in ops):
        raise bad_request("the JSON patch is not a list of operations with op and path")
    try:
        return jsonpatch.apply_patch(target, ops, in_place=False)
    except jsonpatch.JsonPatchTestFailed as err:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {err}")
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, IndexError, TypeError) as err:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {err}")


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------

Key = tuple[str, str, str, str]  # group, plural, namespace ("" when cluster-scoped), name


def key_of(rt: ResourceType, namespace: str | None, name: str) -> Key:
    return (rt.group, rt.plural, namespace or "", name)


def generate_name(prefix: str) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return prefix + "".join(random.choice(alphabet) for _ in range(5))


def short_hash(value: Any, length: int = 10) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def nonmeta(rt: ResourceType, obj: Json) -> Json:
    if rt.generation == "spec":
        return {"spec": obj.get("spec")}
    skip = {"metadata", "apiVersion", "kind"} | ({"status"} if rt.status_sub else set())
    return {k: v for k, v in obj.items() if k not in skip}


@dataclass
class Faults:
    conflicts: int = 0
    match: Json = field(default_factory=dict)
    unavailable_until: float = 0.0
    latency: float = 0.0


class Store:
    def __init__(self, schemas: Schemas):
        self.schemas = schemas
        self.lock = threading.RLock()
        self.objects: dict[Key, Json] = {}
        self.rv = 1000
        self.faults = Faults()

    # -- reads --------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Json | None:
        with self.lock:
            obj = self.objects.get(key_of(rt, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def items(self, rt: ResourceType, namespace: str | None = None) -> list[tuple[Key, Json]]:
        with self.lock:
            return sorted(((k, v) for k, v in self.objects.items()
                           if k[0] == rt.group and k[1] == rt.plural and (namespace is None or k[2] == namespace)),
                          key=lambda kv: (kv[0][2], kv[0][3]))

    def namespace_exists(self, namespace: str) -> bool:
        ns_rt = RESOURCES[0]
        return key_of(ns_rt, None, namespace) in self.objects

    # -- writes -------------------------------------------------------------------------------

    def take_conflict_fault(self, rt: ResourceType, namespace: str | None, name: str) -> bool:
        with self.lock:
            faults = self.faults
            if faults.conflicts <= 0:
                return False
            m = faults.match
            if m.get("kind") and m["kind"] not in (rt.kind, rt.plural, rt.singular):
                return False
            if m.get("namespace") and m["namespace"] != (namespace or ""):
                return False
            if m.get("name") and m["name"] != name:
                return False
            faults.conflicts -= 1
            return True

    def prepare(self, rt: ResourceType, version: str, obj: Json, old: Json | None,
                field_validation: str = "Warn") -> tuple[Json, list[str]]:
        """Defaults, validates and stamps the bookkeeping of ``obj`` (the new state of the object,
        ``old`` the stored one or None). Does not store."""
        meta = obj.setdefault("metadata", {})
        name = meta.get("name") or ""
        obj["apiVersion"] = rt.api_version(version)
        obj["kind"] = rt.kind
        if not rt.crd:
            default_builtin(rt, obj)
        invalid = Invalid()
        validate_meta(rt, obj, invalid)
        invalid.raise_if_any(rt, name)
        obj, warnings = self.schemas.check(rt, rt.kind, rt.api_version(version), obj, name, field_validation)
        if version != rt.storage_version:  # conversion "None": the same fields in the storage version
            obj["apiVersion"] = rt.api_version()
            obj, more = self.schemas.check(rt, rt.kind, rt.api_version(), obj, name, field_validation)
            warnings += more
        invalid = Invalid()
        validate_semantics(rt, obj, old, invalid)
        invalid.raise_if_any(rt, name)
        meta = obj["metadata"]
        if old is None:
            meta["uid"] = meta.get("uid") or str(uuid.uuid4())
            meta["creationTimestamp"] = meta.get("creationTimestamp") or rfc3339()
            if rt.generation:
                meta["generation"] = meta.get("generation") or 1
            else:
                meta.pop("generation", None)
        else:
            old_meta = old["metadata"]
            for fixed in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
                if fixed in old_meta:
                    meta[fixed] = old_meta[fixed]
                else:
                    meta.pop(fixed, None)
            if rt.generation:
                generation = old_meta.get("generation", 1)
                if nonmeta(rt, obj) != nonmeta(rt, old):
                    generation += 1
                meta["generation"] = generation
            else:
                meta.pop("generation", None)
        meta.pop("managedFields", None)
        meta.pop("selfLink", None)
        return obj, warnings

    def commit(self, rt: ResourceType, obj: Json) -> Json:
        """Stores a prepared object with a new resourceVersion; an object being deleted whose
        finalizers are gone is removed instead. Returns the stored state."""
        with self.lock:
            self.rv += 1
            meta = obj["metadata"]
            meta["resourceVersion"] = str(self.rv)
            key = key_of(rt, meta.get("namespace"), meta["name"])
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                self.objects.pop(key, None)
                if rt.kind == "Namespace":
                    self._drop_namespace(meta["name"])
            else:
                self.objects[key] = copy.deepcopy(obj)
            return copy.deepcopy(obj)

    def _drop_namespace(self, namespace: str) -> None:
        for key in [k for k in self.objects if k[2] == namespace]:
            del self.objects[key]

    def delete(self, rt: ResourceType, key: Key, dry_run: bool) -> Json:
        with self.lock:
            obj = copy.deepcopy(self.objects[key])
            meta = obj["metadata"]
            if meta.get("finalizers"):
                if not meta.get("deletionTimestamp"):
                    meta["deletionTimestamp"] = rfc3339()
                    meta["deletionGracePeriodSeconds"] = 0
                    if rt.kind == "Namespace":
                        obj["status"] = {"phase": "Terminating"}
                    if not dry_run:
                        return self.commit(rt, obj)
                return obj
            if not dry_run:
                del self.objects[key]
                if rt.kind == "Namespace":
                    self._drop_namespace(key[3])
            return obj

    def internal_write(self, rt: ResourceType, obj: Json) -> Json | None:
        """A controller's write: validated like any other; skipped when nothing changed."""
        with self.lock:
            meta = obj["metadata"]
            old = self.objects.get(key_of(rt, meta.get("namespace"), meta["name"]))
            if old is None or old.get("metadata", {}).get("uid") != meta.get("uid"):
                return None
            candidate = copy.deepcopy(obj)
            candidate["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if candidate == old:
                return None
            try:
                prepared, _ = self.prepare(rt, rt.storage_version, candidate, old, "Strict")
            except ApiError as err:
                print(f"kube_emulator: controller write of {rt.kind} {meta.get('namespace')}/{meta['name']} "
                      f"refused: {err.message}", file=sys.stderr, flush=True)
                return None
            prepared["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if prepared == old:
                return None
            return self.commit(rt, prepared)

    def seed(self, obj: Json) -> Json:
        """``/_emulator/objects``: create or replace, status kept, namespaces created."""
        if not isinstance(obj, dict) or not isinstance(obj.get("apiVersion"), str) or not obj.get("kind"):
            raise bad_request("every seeded object needs apiVersion and kind")
        found = find_kind(obj["apiVersion"], obj["kind"])
        if found is None:
            raise bad_request(f"no kind {obj['kind']} is served in {obj['apiVersion']}")
        rt, version = found
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        with self.lock:
            namespace = meta.get("namespace")
            if rt.namespaced:
                namespace = namespace or "default"
                meta["namespace"] = namespace
                if not self.namespace_exists(namespace):
                    self.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
            else:
                meta.pop("namespace", None)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = generate_name(meta["generateName"])
            old = self.objects.get(key_of(rt, namespace, meta.get("name") or ""))
            given_generation = meta.get("generation")
            prepared, _ = self.prepare(rt, version, obj, copy.deepcopy(old) if old else None)
            if given_generation and rt.generation:
                prepared["metadata"]["generation"] = given_generation
            return self.commit(rt, prepared)


# --------------------------------------------------------------------------------------------
# EKS tokens
# --------------------------------------------------------------------------------------------

EKS_PREFIX = "k8s-aws-v1."
EKS_PARAMS = {"action", "version", "x-amz-algorithm", "x-amz-credential", "x-amz-date",
              "x-amz-expires", "x-amz-security-token", "x-amz-signature", "x-amz-signedheaders"}
EKS_MAX_AGE = dt.timedelta(minutes=15)  # aws-iam-authenticator's presignedURLExpiration
EKS_SKEW = dt.timedelta(minutes=5)


def check_eks_token(token: str, now: dt.datetime | None = None) -> tuple[bool, str]:
    """Checks the shape of an ``aws eks get-token`` token like aws-iam-authenticator's Verify does.
    Returns (accepted, reason or detail). The presigned request is not sent to STS (there is none
    here), so the signature itself is not verified, only its form."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if not token.startswith(EKS_PREFIX):
        return False, "not an EKS token"
    if len(token) > 4096:
        return False, "token is too large"
    encoded = token[len(EKS_PREFIX):]
    if "=" in encoded:
        return False, "base64 padding present (tokens are base64url without padding)"
    if not re.fullmatch(r"[A-Za-z0-9_-]+", encoded):
        return False, "token is not base64url"
    try:
        url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False, "token does not decode"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return False, "token is not a URL"
    if parts.scheme != "https":
        return False, f"unexpected scheme {parts.scheme!r}"
    if port is not None or parts.username or parts.password or parts.netloc != host:
        return False, f"unexpected host {parts.netloc!r}"
    m = re.fullmatch(r"sts(?:\.([a-z]{2}(?:-[a-z]+)+-\d+))?\.amazonaws\.com", host)
    if not m:
        return False, f"unexpected hostname {host!r}"
    host_region = m.group(1) or "us-east-1"
    if parts.path != "/":
        return False, f"unexpected path {parts.path!r}"
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return False, "malformed query"
    params: dict[str, str] = {}
    for key, value in pairs:
        lower = key.lower()
        if lower in params:
            return False, f"duplicate query parameter {key}"
        if lower not in EKS_PARAMS:
            return False, f"non-whitelisted query parameter {key}"
        params[lower] = value
    if params.get("action") != "GetCallerIdentity":
        return False, f"unexpected action {params.get('action')!r}"
    if params.get("version") != "2011-06-15":
        return False, f"unexpected version {params.get('version')!r}"
    if params.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
        return False, f"unexpected algorithm {params.get('x-amz-algorithm')!r}"
    signed = (params.get("x-amz-signedheaders") or "").lower().split(";")
    if "x-k8s-aws-id" not in signed:
        return False, "x-k8s-aws-id is not a signed header"
    if "host" not in signed:
        return False, "host is not a signed header"
    amz_date = params.get("x-amz-date") or ""
    try:
        signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return False, f"malformed X-Amz-Date {amz_date!r}"
    expires = params.get("x-amz-expires") or ""
    if not re.fullmatch(r"\d{1,4}", expires) or not 1 <= int(expires) <= 900:
        return False, f"X-Amz-Expires {expires!r} is not 1..900"
    if now > signed_at + EKS_MAX_AGE:
        return False, "X-Amz-Date is expired (15 minute expiration)"
    if signed_at > now + EKS_SKEW:
        return False, "X-Amz-Date is in the future"
    scope = (params.get("x-amz-credential") or "").split("/")
    if len(scope) != 5 or not scope[0] or scope[4] != "aws4_request":
        return False, "malformed X-Amz-Credential"
    if scope[1] != amz_date[:8]:
        return False, "credential scope date differs from X-Amz-Date"
    if scope[2] != host_region:
        return False, f"credential scope region {scope[2]!r} does not match host {host!r}"
    if scope[3] != "sts":
        return False, f"credential scope service {scope[3]!r} is not sts"
    if not re.fullmatch(r"[0-9a-f]{64}", params.get("x-amz-signature") or ""):
        return False, "signature is not 64 hex characters"
    return True, f"access key {scope[0]}, region {host_region} (signature not verified: no STS)"


# --------------------------------------------------------------------------------------------
# Simulated controllers
# --------------------------------------------------------------------------------------------


def knob(obj: Json, name: str) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(KNOB + name)


def knob_float(obj: Json, name: str, default: float | None) -> float | None:
    value = knob(obj, name)
    if value is None:
        return default
    if value.strip().lower() == "never":
        return None
    try:
        return float(value)
    except ValueError:
        return default


def knob_true(obj: Json, name: str) -> bool:
    return (knob(obj, name) or "").strip().lower() == "true"


def set_condition(conditions: list[Json], ctype: str, status: str, reason: str, message: str,
                  observed_generation: int | None, now: str, update_time: bool = False) -> None:
    """meta.SetStatusCondition: lastTransitionTime changes only with the status."""
    for cond in conditions:
        if cond.get("type") == ctype:
            if cond.get("status") != status:
                cond["lastTransitionTime"] = now
            cond.update(status=status, reason=reason, message=message)
            if observed_generation is not None:
                cond["observedGeneration"] = observed_generation
            return
    cond = {"type": ctype, "status": status}
    if observed_generation is not None:
        cond["observedGeneration"] = observed_generation
    cond.update(lastTransitionTime=now, reason=reason, message=message)
    conditions.append(cond)


def get_condition(conditions: list[Json], ctype: str) -> Json | None:
    return next((c for c in conditions if c.get("type") == ctype), None)


def revision_of(obj: Json, seed: str) -> str:
    override = knob(obj, "revision")
    if override:
        return override
    return "main@sha1:" + hashlib.sha1(seed.encode()).hexdigest()


class Controllers:
    def __init__(self, store: Store):
        self.store = store
        self.flux: dict[str, Json] = {}
        self.flux_failed: dict[str, tuple[Any, Any, float]] = {}
        self.argo: dict[str, float] = {}
        self.argo_health: dict[str, Json] = {}
        self.workloads: dict[str, Json] = {}
        self.hpa: dict[str, Json] = {}

    def tick(self) -> None:
        with self.store.lock:
            now = time.monotonic()
            live: set[str] = set()
            for rt in RESOURCES:
                for _, obj in self.store.items(rt):
                    uid = obj["metadata"]["uid"]
                    live.add(uid)
                    try:
                        if rt.kind in FLUX_KINDS:
                            self.flux_tick(rt, copy.deepcopy(obj), now)
                        elif rt.kind == "Application":
                            self.argo_tick(rt, copy.deepcopy(obj), now)
                        elif rt.kind == "Deployment":
                            self.deployment_tick(rt, copy.deepcopy(obj), now)
                        elif rt.kind == "StatefulSet":
                            self.statefulset_tick(rt, copy.deepcopy(obj), now)
                        elif rt.kind == "HorizontalPodAutoscaler":
                            self.hpa_tick(rt, copy.deepcopy(obj), now)
                    except Exception:  # noqa: BLE001  (one bad object must not stop the others)
                        traceback.print_exc(file=sys.stderr)
            for states in (self.flux, self.flux_failed, self.argo, self.argo_health, self.workloads, self.hpa):
                for uid in [u for u in states if u not in live]:
                    del states[uid]

    # -- Flux ---------------------------------------------------------------------------------

    def flux_tick(self, rt: ResourceType, obj: Json, now: float) -> None:
        meta = obj["metadata"]
        uid, generation = meta["uid"], meta.get("generation", 1)
        token = (meta.get("annotations") or {}).get(FLUX_REQUESTED_AT)
        status = obj.setdefault("status", {})
        conditions = status.setdefault("conditions", [])
        stamp = rfc3339()
        running = self.flux.get(uid)
        if running is None:
            if (obj.get("spec") or {}).get("suspend") is True:
                return
            needs = (token is not None and token != status.get("lastHandledReconcileAt")) \
                or status.get("observedGeneration") != generation
            if not needs:
                return
            failed = self.flux_failed.get(uid)
            if failed is not None and failed[:2] == (token, generation):
                retry = knob_float(obj, "retry-seconds", None)
                if retry is None or now - failed[2] < retry:
                    return
            self.flux[uid] = {"start": now, "token": token, "generation": generation}
            set_condition(conditions, "Reconciling", "True", "Progressing", "reconciliation in progress",
                          generation, stamp)
            ready = get_condition(conditions, "Ready")
            if not (knob_true(obj, "stale-ready") and ready is not None and ready.get("status") == "True"):
                set_condition(conditions, "Ready", "Unknown", "Progressing", "Reconciliation in progress",
                              generation, stamp)
            if knob_true(obj, "handled-early") and token is not None:
                status["lastHandledReconcileAt"] = token
            self.store.internal_write(rt, obj)
            return
        if knob_true(obj, "never-finishes"):
            return
        if now - running["start"] < (knob_float(obj, "reconcile-seconds", 1.0) or 0.0):
            return
        del self.flux[uid]
        token, generation = running["token"], running["generation"]
        if token is not None:
            status["lastHandledReconcileAt"] = token
        fail_message = knob(obj, "ready-false-message")
        if fail_message is not None:
            reason = knob(obj, "ready-false-reason") or "ReconciliationFailed"
            set_condition(conditions, "Ready", "False", reason, fail_message, generation, stamp)
            set_condition(conditions, "Reconciling", "True", "ProgressingWithRetry", "reconciliation in progress",
                          generation, stamp)
            self.flux_failed[uid] = (token, generation, now)
            self.store.internal_write(rt, obj)
            return
        self.flux_failed.pop(uid, None)
        revision = revision_of(obj, f"{meta.get('namespace')}/{meta['name']}/{json.dumps(obj.get('spec'), sort_keys=True)}")
        status["observedGeneration"] = generation
        status["conditions"] = conditions = [c for c in conditions if c.get("type") != "Reconciling"]
        set_condition(conditions, "Ready", "True", "ReconciliationSucceeded", f"Applied revision: {revision}",
                      generation, stamp)
        if rt.kind in ("GitRepository", "HelmRepository", "OCIRepository"):
            artifact = status.get("artifact") or {}
            if artifact.get("revision") != revision:
                digest = hashlib.sha256(revision.encode()).hexdigest()
                path = f"{rt.singular}/{meta.get('namespace')}/{meta['name']}/{digest[:40]}.tar.gz"
                status["artifact"] = {
                    "digest": f"sha256:{digest}", "lastUpdateTime": stamp, "path": path,
                    "revision": revision, "size": 4096,
                    "url": f"http://source-controller.flux-system.svc.cluster.local./{path}"}
            if rt.kind == "HelmRepository" or rt.kind == "OCIRepository":
                status["url"] = status["artifact"]["url"]
        elif rt.kind == "Kustomization":
            status["lastAppliedRevision"] = revision
            status["lastAttemptedRevision"] = revision
        elif rt.kind == "HelmRelease":
            status["lastAttemptedGeneration"] = generation
            status["lastAttemptedReleaseAction"] = "upgrade"
        self.store.internal_write(rt, obj)

    # -- Argo CD ------------------------------------------------------------------------------

    def argo_tick(self, rt: ResourceType, obj: Json, now: float) -> None:
        meta = obj["metadata"]
        uid = meta["uid"]
        status = obj.setdefault("status", {})
        state = status.get("operationState") or {}
        operation = obj.get("operation")
        stamp = rfc3339()
        changed = False
        if operation and state.get("phase") not in ("Running", "Terminating"):
            status["operationState"] = {"operation": copy.deepcopy(operation), "phase": "Running",
                                        "message": "one or more tasks are running", "startedAt": stamp}
            self.argo[uid] = now
            changed = True
        elif state.get("phase") == "Running":
            started = self.argo.setdefault(uid, now)
            if now - started >= (knob_float(obj, "sync-seconds", 1.0) or 0.0):
                del self.argo[uid]
                self.finish_sync(obj, stamp, now)
                changed = True
        annotations = meta.get("annotations") or {}
        pending = self.argo_health.get(uid)
        if ARGO_REFRESH in annotations:
            del annotations[ARGO_REFRESH]
            self.reconcile_health(obj, stamp)
            if pending:
                pending["done"] = True
            changed = True
        elif pending and not pending["done"] and not knob_true(obj, "stale-health") \
                and now - pending["finished"] >= (knob_float(obj, "health-lag-seconds", 2.0) or 0.0):
            pending["done"] = True
            self.reconcile_health(obj, stamp)
            changed = True
        if changed:
            self.store.internal_write(rt, obj)

    def finish_sync(self, obj: Json, stamp: str, now: float) -> None:
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj["status"]
        state = status["operationState"]
        sync_op = (state.get("operation") or {}).get("sync") or {}
        source = spec.get("source") or (spec.get("sources") or [{}])[0]
        revision = sync_op.get("revision") or ""
        if not re.fullmatch(r"[0-9a-f]{40}", revision):
            override = knob(obj, "revision")
            revision = override or hashlib.sha1(
                f"{source.get('repoURL')}@{revision or source.get('targetRevision', 'HEAD')}".encode()).hexdigest()
        obj.pop("operation", None)
        fail = knob(obj, "sync-fail-message")
        state["finishedAt"] = stamp
        if fail is not None:
            state.update(phase="Failed", message=fail)
        else:
            state.update(phase="Succeeded", message="successfully synced (all tasks run)")
            result: Json = {"revision": revision}
            if spec.get("source"):
                result["source"] = copy.deepcopy(spec["source"])
            state["syncResult"] = result
            sync: Json = {"status": "Synced", "revision": revision,
                          "comparedTo": {"destination": copy.deepcopy(spec.get("destination") or {})}}
            if spec.get("source"):
                sync["comparedTo"]["source"] = copy.deepcopy(spec["source"])
            status["sync"] = sync
            history = status.setdefault("history", [])
            entry: Json = {"id": (history[-1]["id"] + 1) if history else 0, "revision": revision,
                           "deployStartedAt": state["startedAt"], "deployedAt": stamp,
                           "initiatedBy": copy.deepcopy((state.get("operation") or {}).get("initiatedBy") or {})}
            if spec.get("source"):
                entry["source"] = copy.deepcopy(spec["source"])
            history.append(entry)
            del history[:-max(1, spec.get("revisionHistoryLimit", 10))]
        self.argo_health[meta["uid"]] = {"finished": now, "done": False}

    def reconcile_health(self, obj: Json, stamp: str) -> None:
        status = obj["status"]
        status["reconciledAt"] = stamp
        wanted = knob(obj, "health-after-sync") or "Healthy"
        health = status.get("health") or {}
        if health.get("status") != wanted:
            health = {"status": wanted, "lastTransitionTime": stamp}
        status["health"] = health

    # -- Deployments and StatefulSets ---------------------------------------------------------

    def _workload_state(self, obj: Json, now: float) -> tuple[Json, Json]:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        template = spec.get("template") or {}
        state = self.workloads.get(meta["uid"])
        if state is None:
            state = self.workloads[meta["uid"]] = {
                "template": short_hash(template), "generation": meta.get("generation"), "generation_at": now,
                "last_pod": now, "progress_at": now, "rolling": False}
        if state["generation"] != meta.get("generation"):
            state["generation"] = meta.get("generation")
            state["generation_at"] = now
        return state, template

    def deployment_tick(self, rt: ResourceType, obj: Json, now: float) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        status = obj.setdefault("status", {})
        state, template = self._workload_state(obj, now)
        generation = meta.get("generation", 1)
        if status.get("observedGeneration") != generation:
            if now - state["generation_at"] < 0.2:
                return
            status["observedGeneration"] = generation
        template_hash = short_hash(template)
        desired = spec.get("replicas", 1)
        ready = min(status.get("readyReplicas", 0), desired)
        updated = min(status.get("updatedReplicas", 0), desired)
        if state["template"] != template_hash:
            state.update(template=template_hash, rolling=True, last_pod=now, progress_at=now)
            updated = 0
        if not state["rolling"]:
            updated = desired
        max_ready = knob(obj, "max-ready")
        cap = min(desired, int(max_ready)) if max_ready and max_ready.isdigit() else desired
        ready = min(ready, cap)
        pod_start = knob_float(obj, "pod-start-seconds", 0.5) or 0.0
        if (ready < cap or updated < desired) and not spec.get("paused"):
            if now - state["last_pod"] >= pod_start:
                state["last_pod"] = now
                state["progress_at"] = now
                if ready < cap:
                    ready += 1
                if updated < desired:
                    updated += 1
        else:
            state["last_pod"] = now
        if state["rolling"] and updated >= desired:
            state["rolling"] = False
        replicas = desired
        stamp = rfc3339()
        counts = {"replicas": replicas, "updatedReplicas": updated, "readyReplicas": ready,
                  "availableReplicas": ready, "unavailableReplicas": replicas - ready}
        for name, value in counts.items():
            if value:
                status[name] = value
            else:
                status.pop(name, None)
        rolling_update = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = 0
        if (spec.get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate":
            value = rolling_update.get("maxUnavailable", "25%")
            if isinstance(value, str) and value.endswith("%"):
                max_unavailable = desired * int(value[:-1]) // 100
            else:
                max_unavailable = int(value)
        conditions = status.setdefault("conditions", [])
        rs = f"{meta['name']}-{template_hash}"
        if ready >= desired - max_unavailable:
            self._deploy_condition(conditions, "Available", "True", "MinimumReplicasAvailable",
                                   "Deployment has minimum availability.", stamp)
        else:
            self._deploy_condition(conditions, "Available", "False", "MinimumReplicasUnavailable",
                                   "Deployment does not have minimum availability.", stamp)
        complete = updated == desired and ready == desired
        deadline = spec.get("progressDeadlineSeconds", 600)
        if complete:
            self._deploy_condition(conditions, "Progressing", "True", "NewReplicaSetAvailable",
                                   f'ReplicaSet "{rs}" has successfully progressed.', stamp)
        elif now - state["progress_at"] > deadline:
            self._deploy_condition(conditions, "Progressing", "False", "ProgressDeadlineExceeded",
                                   f'ReplicaSet "{rs}" has timed out progressing.', stamp)
        else:
            self._deploy_condition(conditions, "Progressing", "True", "ReplicaSetUpdated",
                                   f'ReplicaSet "{rs}" is progressing.', stamp)
        self.store.internal_write(rt, obj)

    @staticmethod
    def _deploy_condition(conditions: list[Json], ctype: str, status: str, reason: str, message: str,
                          stamp: str) -> None:
        current = get_condition(conditions, ctype)
        if current is not None and (current.get("status"), current.get("reason"), current.get("message")) == \
                (status, reason, message):
            return
        if current is None:
            current = {"type": ctype}
            conditions.append(current)
        if current.get("status") != status:
            current["lastTransitionTime"] = stamp
        current.update(status=status, lastUpdateTime=stamp, reason=reason, message=message)
        current.setdefault("lastTransitionTime", stamp)
        order = {"Available": 0, "Progressing": 1}
        conditions.sort(key=lambda c: order.get(c.get("type"), 2))

    def statefulset_tick(self, rt: ResourceType, obj: Json, now: float) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        status = obj.setdefault("status", {})
        state, template = self._workload_state(obj, now)
        generation = meta.get("generation", 1)
        if status.get("observedGeneration") != generation:
            if now - state["generation_at"] < 0.2:
                return
            status["observedGeneration"] = generation
        template_hash = short_hash(template)
        revision = f"{meta['name']}-{template_hash}"
        desired = spec.get("replicas", 1)
        ready = min(status.get("readyReplicas", 0), desired)
        updated = min(status.get("updatedReplicas", 0), desired)
        if state["template"] != template_hash:
            state.update(template=template_hash, rolling=True, last_pod=now)
            updated = 0
        if not state["rolling"]:
            updated = None  # all pods are at the update revision
        max_ready = knob(obj, "max-ready")
        cap = min(desired, int(max_ready)) if max_ready and max_ready.isdigit() else desired
        ready = min(ready, cap)
        pod_start = knob_float(obj, "pod-start-seconds", 0.5) or 0.0
        if ready < cap or (updated is not None and updated < desired):
            if now - state["last_pod"] >= pod_start:
                state["last_pod"] = now
                if ready < cap:
                    ready += 1
                elif updated is not None:
                    updated += 1
        else:
            state["last_pod"] = now
        parallel = spec.get("podManagementPolicy") == "Parallel"
        replicas = desired if parallel else min(desired, ready + 1)
        if updated is None or updated >= replicas:
            state["rolling"] = False
            updated = replicas
            status["currentRevision"] = revision
            current = replicas
        else:
            current = replicas - updated
        status["updateRevision"] = revision
        status.setdefault("currentRevision", revision)
        status["replicas"] = replicas
        status["availableReplicas"] = ready
        status.setdefault("collisionCount", 0)
        for name, value in (("readyReplicas", ready), ("currentReplicas", current), ("updatedReplicas", updated)):
            if value:
                status[name] = value
            else:
                status.pop(name, None)
        self.store.internal_write(rt, obj)

    # -- HPA ----------------------------------------------------------------------------------

    def hpa_tick(self, rt: ResourceType, obj: Json, now: float) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        status = obj.setdefault("status", {})
        conditions = status.setdefault("conditions", [])
        stamp = rfc3339()
        state = self.hpa.setdefault(meta["uid"], {"above_since": None})
        ref = spec.get("scaleTargetRef") or {}
        target_rt = {"Deployment": RESOURCES[2], "StatefulSet": RESOURCES[3]}.get(ref.get("kind", ""))
        target = None
        if target_rt is not None and ref.get("apiVersion", "apps/v1") == "apps/v1":
            target = self.store.get(target_rt, meta["namespace"], ref.get("name", ""))
        status["observedGeneration"] = meta.get("generation", 1)
        if target is None or target_rt is None:
            set_condition(conditions, "AbleToScale", "False", "FailedGetScale",
                          f'the HPA controller was unable to get the target\'s current scale: '
                          f'{(target_rt.group_resource if target_rt else ref.get("kind", "?"))} '
                          f'"{ref.get("name")}" not found', None, stamp)
            status.setdefault("desiredReplicas", 0)
            status.setdefault("currentReplicas", 0)
            self.store.internal_write(rt, obj)
            return
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas", 1)
        current = (target.get("spec") or {}).get("replicas", 1)
        desired = current
        limited = ("False", "DesiredWithinRange", "the desired count is within the acceptable range")
        if current == 0:
            set_condition(conditions, "ScalingActive", "False", "ScalingDisabled",
                          "scaling is disabled since the replica count of the target is zero", None, stamp)
            state["above_since"] = None
        else:
            set_condition(conditions, "ScalingActive", "True", "ValidMetricFound",
                          "the HPA was able to successfully calculate a replica count from cpu resource "
                          "utilization (percentage of request)", None, stamp)
            if current < low:
                desired = low
                limited = ("True", "TooFewReplicas", "the desired replica count is less than the minimum replica count")
            elif current > high:
                desired = high
                limited = ("True", "TooManyReplicas", "the desired replica count is more than the maximum replica count")
            elif current > low:
                state["above_since"] = state["above_since"] or now
                idle = knob_float(obj, "idle-downscale-seconds", 3.0)
                if idle is not None and now - state["above_since"] >= idle:
                    desired = low
            else:
                state["above_since"] = None
            set_condition(conditions, "ScalingLimited", *limited, None, stamp)
        if desired != current:
            target["spec"]["replicas"] = desired
            self.store.internal_write(target_rt, target)
            status["lastScaleTime"] = stamp
            state["above_since"] = None
            set_condition(conditions, "AbleToScale", "True", "SucceededRescale",
                          f"the HPA controller was able to update the target scale to {desired}", None, stamp)
        elif current != 0:
            set_condition(conditions, "AbleToScale", "True", "ReadyForNewScale",
                          "recommended size matches current size", None, stamp)
        status["currentReplicas"] = (target.get("status") or {}).get("replicas", 0)
        status["desiredReplicas"] = desired
        order = {"AbleToScale": 0, "ScalingActive": 1, "ScalingLimited": 2}
        conditions.sort(key=lambda c: order.get(c.get("type"), 3))
        self.store.internal_write(rt, obj)


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: bytes
    authorization: str = ""


@dataclass
class Response:
    code: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json"


class Emulator:
    def __init__(self, schemas: Schemas, tokens: list[str], eks_cluster: str | None, kube_version: str,
                 verbose: bool = False):
        self.store = Store(schemas)
        self.controllers = Controllers(self.store)
        self.tokens = tokens
        self.eks_cluster = eks_cluster
        self.kube_version = kube_version
        self.verbose = verbose
        self.requests: list[Json] = []
        self.requests_lock = threading.Lock()
        self.started = time.time()

    # -- entry point --------------------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        if req.path.startswith("/_emulator/"):
            try:
                return self.control(req)
            except ApiError as err:
                return Response(err.code, err.status())
        entry: Json = {"time": rfc3339(), "method": req.method, "path": req.path, "query": req.query,
                       "content_type": req.content_type or None, "body": None, "status": None, "auth": None}
        if req.body:
            try:
                entry["body"] = json.loads(req.body)
            except (ValueError, UnicodeDecodeError):
                entry["body"] = None
        faults = self.store.faults
        try:
            if faults.unavailable_until > time.monotonic():
                entry["auth"] = "not checked (unavailable)"
                raise ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request",
                               {}, {"Retry-After": "1"})
            self.authenticate(req, entry)
            response = self.route(req)
        except ApiError as err:
            response = Response(err.code, err.status(), err.headers)
        except Exception as err:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            response = Response(500, ApiError(500, "InternalError", f"Internal error occurred: {err}").status())
        entry["status"] = response.code
        with self.requests_lock:
            self.requests.append(entry)
            del self.requests[:-LOG_LIMIT]
        if self.verbose:
            print(f"kube_emulator: {req.method} {req.path} {req.query or ''} -> {response.code} ({entry['auth']})",
                  file=sys.stderr, flush=True)
        if faults.latency > 0:
            time.sleep(faults.latency)
        return response

    def authenticate(self, req: Request, entry: Json) -> None:
        header = req.authorization
        if not header.lower().startswith("bearer "):
            entry["auth"] = "rejected:no bearer token"
            raise ApiError(401, "Unauthorized", "Unauthorized")
        token = header[7:].strip()
        for candidate in self.tokens:
            if hmac.compare_digest(candidate.encode(), token.encode()):
                entry["auth"] = "static"
                return
        if token.startswith(EKS_PREFIX):
            if self.eks_cluster is None:
                entry["auth"] = "rejected:EKS tokens are not accepted (no --eks-cluster)"
                raise ApiError(401, "Unauthorized", "Unauthorized")
            ok, reason = check_eks_token(token)
            if ok:
                entry["auth"] = "eks"
                entry["auth_detail"] = f"cluster {self.eks_cluster}: {reason}"
                return
            entry["auth"] = f"rejected:{reason}"
            raise ApiError(401, "Unauthorized", "Unauthorized")
        entry["auth"] = "rejected:unknown token"
        raise ApiError(401, "Unauthorized", "Unauthorized")

    # -- control API --------------------------------------------------------------------------

    def control(self, req: Request) -> Response:
        body: Any = None
        if req.body:
            try:
                body = json.loads(req.body)
            except ValueError as err:
                raise bad_request(f"body is not JSON: {err}")
        path = req.path.rstrip("/")
        if path == "/_emulator/objects" and req.method == "POST":
            items = body["items"] if isinstance(body, dict) and "items" in body else [body]
            stored = []
            with self.store.lock:  # all or nothing: an invalid item leaves the store as it was
                snapshot = (copy.deepcopy(self.store.objects), self.store.rv)
                try:
                    for item in items:
                        stored.append(self.store.seed(item))
                except Exception:
                    self.store.objects, self.store.rv = snapshot
                    raise
            return Response(200, {"items": stored})
        if path == "/_emulator/objects" and req.method == "GET":
            with self.store.lock:
                return Response(200, {"items": [copy.deepcopy(o) for _, o in sorted(self.store.objects.items())]})
        if path == "/_emulator/faults" and req.method == "POST":
            if not isinstance(body, dict):
                raise bad_request("faults: a JSON object")
            faults = self.store.faults
            with self.store.lock:
                if body.get("clear"):
                    self.store.faults = faults = Faults()
                if "conflicts" in body:
                    faults.conflicts = int(body["conflicts"])
                    faults.match = dict(body.get("match") or {})
                if "unavailable_seconds" in body:
                    faults.unavailable_until = time.monotonic() + float(body["unavailable_seconds"])
                if "latency_seconds" in body:
                    faults.latency = float(body["latency_seconds"])
                return Response(200, {"conflicts": faults.conflicts, "match": faults.match,
                                      "unavailable_for": max(0.0, faults.unavailable_until - time.monotonic()),
                                      "latency_seconds": faults.latency})
        if path == "/_emulator/requests" and req.method == "GET":
            with self.requests_lock:
                return Response(200, copy.deepcopy(self.requests))
        if path == "/_emulator/requests" and req.method == "DELETE":
            with self.requests_lock:
                self.requests.clear()
            return Response(200, [])
        raise not_found_path()

    # -- routing ------------------------------------------------------------------------------

    def route(self, req: Request) -> Response:
        parts = [unquote(p) for p in req.path.split("/") if p]
        if req.method == "GET":
            if req.path in ("/healthz", "/livez", "/readyz"):
                return Response(200, None, raw=b"ok", content_type="text/plain; charset=utf-8")
            if req.path == "/version":
                return Response(200, self.version())
            if parts == ["api"]:
                return Response(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
            if parts == ["apis"]:
                return Response(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": self.groups()})
            if len(parts) == 2 and parts[0] == "apis":
                group = next((g for g in self.groups() if g["name"] == parts[1]), None)
                if group is None:
                    raise not_found_path()
                return Response(200, {"kind": "APIGroup", "apiVersion": "v1", **group})
            if parts == ["api", "v1"] or (len(parts) == 3 and parts[0] == "apis"):
                group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
                return Response(200, self.resource_list(group, version))
        if len(parts) >= 3 and parts[0] == "api" and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise not_found_path()
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            inner = find_resource(group, version, rest[2])
            if inner is not None and inner.namespaced:
                namespace, rest = rest[1], rest[2:]
        rt = find_resource(group, version, rest[0])
        if rt is None or len(rest) > 3:
            raise not_found_path()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if (not rt.namespaced and namespace is not None) or (rt.namespaced and name is not None and namespace is None):
            raise not_found_path()
        if sub is not None and not ((sub == "status" and rt.status_sub) or (sub == "scale" and rt.scale_sub)):
            raise not_found_path()
        if req.query.get("watch") in ("true", "1"):
            raise ApiError(405, "MethodNotAllowed", "watch is not supported by this emulator: poll with list "
                           "(the emulated apiserver serves no watch streams)")
        dry_run = req.query.get("dryRun") == "All"
        if "dryRun" in req.query and not dry_run:
            raise bad_request(f"Invalid dry run value: {req.query['dryRun']!r}: valid values: All")
        fv = req.query.get("fieldValidation", "Warn") or "Warn"
        if fv not in ("Ignore", "Warn", "Strict"):
            raise bad_request(f'fieldValidation must be one of "Ignore", "Warn", "Strict", got {fv!r}')
        with self.store.lock:
            if name is None:
                if req.method == "GET":
                    return self.list(rt, version, namespace, req.query)
                if req.method == "POST":
                    if rt.namespaced and namespace is None:
                        raise ApiError(405, "MethodNotAllowed",
                                       "the server does not allow this method on the requested resource")
                    return self.create(rt, version, namespace, self.body_json(req), dry_run, fv)
                if req.method == "DELETE":
                    return self.delete_collection(rt, version, namespace, req.query, dry_run)
            elif sub == "scale":
                if req.method == "GET":
                    return Response(200, self.scale_of(rt, self.existing(rt, namespace, name)))
                if req.method in ("PUT", "PATCH"):
                    return self.write_scale(rt, version, namespace, name, req, dry_run)
            else:
                if req.method == "GET":
                    return Response(200, self.out(rt, version, self.existing(rt, namespace, name)))
                if req.method in ("PUT", "PATCH"):
                    return self.write(rt, version, namespace, name, sub, req, dry_run, fv)
                if req.method == "DELETE" and sub is None:
                    return self.delete(rt, version, namespace, name, req, dry_run)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    # -- discovery ----------------------------------------------------------------------------

    def version(self) -> Json:
        major, minor, *_ = self.kube_version.split(".")
        return {"major": major, "minor": minor, "emulationMajor": major, "emulationMinor": minor,
                "minCompatibilityMajor": major, "minCompatibilityMinor": str(int(minor) - 1),
                "gitVersion": f"v{self.kube_version}", "gitCommit": "0" * 40, "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc",
                "platform": "linux/amd64"}

    def groups(self) -> list[Json]:
        groups: dict[str, list[str]] = {}
        for rt in RESOURCES:
            if rt.group:
                versions = groups.setdefault(rt.group, [])
                for v in rt.versions:
                    if v not in versions:
                        versions.append(v)
        out = []
        for name, versions in groups.items():
            entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
            out.append({"name": name, "versions": entries, "preferredVersion": entries[0]})
        return out

    def resource_list(self, group: str, version: str) -> Json:
        resources = []
        for rt in RESOURCES:
            if rt.group != group or version not in rt.versions:
                continue
            entry: Json = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                           "kind": rt.kind, "verbs": VERBS}
            if rt.short_names:
                entry["shortNames"] = rt.short_names
            if rt.categories:
                entry["categories"] = rt.categories
            entry["storageVersionHash"] = base64.b64encode(
                hashlib.sha256(f"{rt.group}/{rt.storage_version}/{rt.kind}".encode()).digest()[:8]).decode()
            resources.append(entry)
            if rt.scale_sub:
                resources.append({"name": f"{rt.plural}/scale", "singularName": "", "namespaced": rt.namespaced,
                                  "group": "autoscaling", "version": "v1", "kind": "Scale",
                                  "verbs": ["get", "patch", "update"]})
            if rt.status_sub:
                resources.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                                  "kind": rt.kind, "verbs": ["get", "patch", "update"]})
        if not resources:
            raise not_found_path()
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
                "resources": resources}

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def body_json(req: Request) -> Any:
        if req.content_type and req.content_type.split(";")[0].strip() not in ("application/json", "*/*", ""):
            raise ApiError(415, "UnsupportedMediaType",
                           f'the body of the request was in an unknown format - accepted media types include: '
                           f'application/json')
        try:
            return json.loads(req.body or b"null")
        except (ValueError, UnicodeDecodeError) as err:
            raise bad_request(f"the body of the request is not JSON: {err}")

    def existing(self, rt: ResourceType, namespace: str | None, name: str) -> Json:
        obj = self.store.get(rt, namespace, name)
        if obj is None:
            raise self.not_found(rt, name)
        return obj

    @staticmethod
    def not_found(rt: ResourceType, name: str) -> ApiError:
        details: Json = {"name": name, "kind": rt.plural}
        if rt.group:
            details = {"name": name, "group": rt.group, "kind": rt.plural}
        return ApiError(404, "NotFound", f'{rt.group_resource} "{name}" not found', details)

    @staticmethod
    def conflict(rt: ResourceType, name: str, why: str = "the object has been modified; please apply your "
                 "changes to the latest version and try again") -> ApiError:
        details: Json = {"name": name, "kind": rt.plural}
        if rt.group:
            details = {"name": name, "group": rt.group, "kind": rt.plural}
        return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {why}',
                        details)

    @staticmethod
    def out(rt: ResourceType, version: str, obj: Json) -> Json:
        obj = copy.deepcopy(obj)
        obj["apiVersion"] = rt.api_version(version)
        obj["kind"] = rt.kind
        return {"apiVersion": obj.pop("apiVersion"), "kind": obj.pop("kind"), **obj}

    @staticmethod
    def warnings(warnings: list[str]) -> dict[str, str]:
        if not warnings:
            return {}
        return {"Warning": ", ".join(f'299 - {json.dumps(w)}' for w in warnings)}

    def check_namespace(self, rt: ResourceType, namespace: str | None) -> None:
        if rt.namespaced and namespace is not None and not self.store.namespace_exists(namespace):
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                           {"name": namespace, "kind": "namespaces"})

    @staticmethod
    def check_identity(rt: ResourceType, obj: Any, namespace: str | None, name: str | None,
                       need_type: bool = True) -> None:
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be a JSON object")
        if need_type and (not obj.get("kind") or not obj.get("apiVersion")):
            missing = "Kind" if not obj.get("kind") else "apiVersion"
            raise bad_request(f"Object '{missing}' is missing in '{json.dumps(obj)[:200]}'")
        if obj.get("kind") and obj["kind"] != rt.kind:
            raise bad_request(f'the kind of the provided object ({obj["kind"]}) does not match the resource '
                              f'({rt.kind})')
        if obj.get("apiVersion") and find_kind(obj["apiVersion"], rt.kind) is None:
            raise bad_request(f'the API version in the data ({obj["apiVersion"]}) does not match the expected API '
                              f'version ({rt.api_version()})')
        meta = obj.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        meta = meta or {}
        if namespace is not None and meta.get("namespace") not in (None, "", namespace):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if name is not None and meta.get("name") not in (None, "", name):
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")

    # -- verbs --------------------------------------------------------------------------------

    def list(self, rt: ResourceType, version: str, namespace: str | None, query: dict[str, str]) -> Response:
        label_reqs = parse_label_selector(query.get("labelSelector", ""))
        field_reqs = parse_field_selector(query.get("fieldSelector", ""))
        items = []
        for _, obj in self.store.items(rt, namespace):
            meta = obj["metadata"]
            if not labels_match(label_reqs, meta.get("labels") or {}):
                continue
            if not all((meta.get(f.split(".")[1]) or "") == value if eq else (meta.get(f.split(".")[1]) or "") != value
                       for f, eq, value in field_reqs):
                continue
            item = self.out(rt, version, obj)
            if not rt.crd:  # typed lists omit the items' TypeMeta, unstructured (CRD) lists keep it
                item.pop("apiVersion")
                item.pop("kind")
            items.append(item)
        list_meta: Json = {"resourceVersion": str(self.store.rv)}
        start = 0
        if query.get("continue"):
            try:
                start = int(base64.urlsafe_b64decode(query["continue"].encode()).decode())
            except (ValueError, UnicodeDecodeError):
                raise bad_request("continue key is not valid")
        limit = int(query["limit"]) if query.get("limit", "").isdigit() and int(query["limit"]) > 0 else None
        if limit is not None:
            page = items[start:start + limit]
            if start + limit < len(items):
                list_meta["continue"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
                list_meta["remainingItemCount"] = len(items) - start - limit
            items = page
        else:
            items = items[start:]
        return Response(200, {"apiVersion": rt.api_version(version), "kind": f"{rt.kind}List",
                              "metadata": list_meta, "items": items})

    def create(self, rt: ResourceType, version: str, namespace: str | None, body: Any, dry_run: bool,
               fv: str) -> Response:
        self.check_identity(rt, body, namespace, None)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = generate_name(meta["generateName"])
        if rt.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        for server_field in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation"):
            meta.pop(server_field, None)
        if meta.get("name") and self.store.get(rt, namespace, meta["name"]) is not None:
            details: Json = {"name": meta["name"], "kind": rt.plural}
            if rt.group:
                details = {"name": meta["name"], "group": rt.group, "kind": rt.plural}
            raise ApiError(409, "AlreadyExists", f'{rt.group_resource} "{meta["name"]}" already exists', details)
        if rt.status_sub:
            obj.pop("status", None)  # PrepareForCreate: the status of a new object is the server's
        self.check_namespace(rt, namespace)
        prepared, warnings = self.store.prepare(rt, version, obj, None, fv)
        if dry_run:
            prepared["metadata"].pop("resourceVersion", None)
            return Response(201, self.out(rt, version, prepared), self.warnings(warnings))
        return Response(201, self.out(rt, version, self.store.commit(rt, prepared)), self.warnings(warnings))

    def apply_patch(self, rt: ResourceType, target: Json, req: Request) -> Json:
        ctype = (req.content_type or "").split(";")[0].strip()
        if ctype == "application/apply-patch+yaml":
            raise ApiError(415, "UnsupportedMediaType", "server-side apply (application/apply-patch+yaml) is not "
                           "emulated: use a merge or JSON patch")
        accepted = ["application/json-patch+json", "application/merge-patch+json"] + \
            ([] if rt.crd else ["application/strategic-merge-patch+json"])
        if ctype not in accepted:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           f"accepted media types include: {', '.join(accepted + ['application/apply-patch+yaml'])}")
        try:
            patch = json.loads(req.body or b"null")
        except (ValueError, UnicodeDecodeError) as err:
            raise bad_request(f"error decoding patch: {err}")
        if ctype == "application/json-patch+json":
            return json_patch(target, patch)
        if not isinstance(patch, dict):
            raise bad_request("the patch must be a JSON object")
        if ctype == "application/merge-patch+json":
            return merge_patch(target, patch)
        return strategic_merge(target, patch)

    def write(self, rt: ResourceType, version: str, namespace: str | None, name: str, sub: str | None,
              req: Request, dry_run: bool, fv: str) -> Response:
        old = self.existing(rt, namespace, name)
        current = self.out(rt, version, old)
        if req.method == "PUT":
            body = self.body_json(req)
            self.check_identity(rt, body, namespace, name)
            new = copy.deepcopy(body)
            wanted_rv = (new.get("metadata") or {}).get("resourceVersion")
            wanted_uid = (new.get("metadata") or {}).get("uid")
            if wanted_uid and wanted_uid != old["metadata"]["uid"]:
                raise self.conflict(rt, name, f"Precondition failed: UID in precondition: {wanted_uid}, UID in "
                                    f"object meta: {old['metadata']['uid']}")
            if not wanted_rv and rt.crd:
                invalid = Invalid()
                invalid.invalid("metadata.resourceVersion", "0x0", "must be specified for an update")
                invalid.raise_if_any(rt, name)
        else:
            new = self.apply_patch(rt, current, req)
            self.check_identity(rt, new, namespace, name, need_type=False)
            wanted_rv = (new.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise self.conflict(rt, name)
        if self.store.take_conflict_fault(rt, namespace, name):
            raise self.conflict(rt, name)
        new.setdefault("metadata", {})
        new["metadata"]["name"] = name
        if rt.namespaced:
            new["metadata"]["namespace"] = namespace
        if sub == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif rt.status_sub:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        prepared, warnings = self.store.prepare(rt, version, new, old, fv)
        prepared["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if prepared == old or dry_run:
            return Response(200, self.out(rt, version, prepared), self.warnings(warnings))
        return Response(200, self.out(rt, version, self.store.commit(rt, prepared)), self.warnings(warnings))

    def scale_of(self, rt: ResourceType, obj: Json) -> Json:
        meta = obj["metadata"]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                             "resourceVersion": meta["resourceVersion"],
                             "creationTimestamp": meta["creationTimestamp"]},
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": selector_string((obj.get("spec") or {}).get("selector") or {})}}

    def write_scale(self, rt: ResourceType, version: str, namespace: str | None, name: str, req: Request,
                    dry_run: bool) -> Response:
        old = self.existing(rt, namespace, name)
        scale = self.scale_of(rt, old)
        if req.method == "PUT":
            body = self.body_json(req)
            if not isinstance(body, dict):
                raise bad_request("the body of the request must be a JSON object")
            if body.get("kind") not in (None, "Scale") or body.get("apiVersion") not in (None, "autoscaling/v1"):
                raise bad_request("the body of a scale update must be an autoscaling/v1 Scale")
            new = copy.deepcopy(body)
        else:
            new = self.apply_patch(RESOURCES[2], scale, req)
        meta = new.get("metadata") or {}
        if meta.get("name") not in (None, "", name) or meta.get("namespace") not in (None, "", namespace):
            raise bad_request("the name and namespace of the Scale must match the URL")
        if meta.get("resourceVersion") and meta["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise self.conflict(rt, name)
        if self.store.take_conflict_fault(rt, namespace, name):
            raise self.conflict(rt, name)
        new.update(kind="Scale", apiVersion="autoscaling/v1")
        new["metadata"] = {**meta, "name": name, "namespace": namespace}
        scale_rt = ResourceType("autoscaling", ["v1"], "scale", "scale", "Scale")
        checked, _ = self.store.schemas.check(scale_rt, "Scale", "autoscaling/v1", new, name)
        replicas = (checked.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            invalid = Invalid()
            invalid.invalid("spec.replicas", replicas, "must be greater than or equal to 0")
            invalid.raise_if_any(scale_rt, name)
        workload = copy.deepcopy(old)
        workload["spec"]["replicas"] = replicas
        prepared, _ = self.store.prepare(rt, version, workload, old)
        prepared["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if prepared != old and not dry_run:
            prepared = self.store.commit(rt, prepared)
        return Response(200, self.scale_of(rt, prepared))

    def delete(self, rt: ResourceType, version: str, namespace: str | None, name: str, req: Request,
               dry_run: bool) -> Response:
        old = self.existing(rt, namespace, name)
        options: Any = {}
        if req.body:
            try:
                options = json.loads(req.body) or {}
            except ValueError as err:
                raise bad_request(f"DeleteOptions are not JSON: {err}")
        pre = options.get("preconditions") or {} if isinstance(options, dict) else {}
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise self.conflict(rt, name, f"the ResourceVersion in the precondition ({pre['resourceVersion']}) does "
                                f"not match the ResourceVersion in record ({old['metadata']['resourceVersion']}). "
                                "The object might have been modified")
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise self.conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                                f"meta: {old['metadata']['uid']}")
        gone = self.store.delete(rt, key_of(rt, namespace, name), dry_run)
        return Response(200, self.out(rt, version, gone))

    def delete_collection(self, rt: ResourceType, version: str, namespace: str | None, query: dict[str, str],
                          dry_run: bool) -> Response:
        listed = self.list(rt, version, namespace, query).body
        for item in listed["items"]:
            self.store.delete(rt, key_of(rt, item["metadata"].get("namespace"), item["metadata"]["name"]), dry_run)
        return Response(200, listed)


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------


def write_certificates(directory: Path) -> Path:
    """A self-signed CA and a server certificate (127.0.0.1, ::1, localhost) signed by it, in PEM,
    in ``directory``. Returns the CA's path."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "failoverd test bed"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "kube-emulator-ca")])
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))

    def put(name: str, data: bytes, mode: int) -> Path:
        path = directory / name
        tmp = directory / f".{name}.tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return path.resolve()

    ca_path = put("ca.pem", ca.public_bytes(serialization.Encoding.PEM), 0o644)
    put("server.pem", leaf.public_bytes(serialization.Encoding.PEM), 0o644)
    put("server-key.pem", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()), 0o600)
    return ca_path


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-emulator"
    sys_version = ""
    timeout = 300  # idle keep-alive connections

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.settimeout(10)
            self.connection.do_handshake()
            self.connection.settimeout(self.timeout)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def dispatch(self) -> None:
        emulator: Emulator = self.server.emulator  # type: ignore[attr-defined]
        body = self.read_body()
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        req = Request(self.command, parts.path or "/", query, self.headers.get("Content-Type") or "", body,
                      self.headers.get("Authorization") or "")
        response = emulator.handle(req)
        if response.raw is not None:
            payload = response.raw
        else:
            payload = json.dumps(response.body, separators=(",", ":")).encode() + b"\n"
        self.send_response(response.code)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = dispatch


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], emulator: Emulator, tls: ssl.SSLContext | None):
        self.emulator = emulator
        self.tls = tls
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        err = sys.exc_info()[1]
        if isinstance(err, (ssl.SSLError, ConnectionError, TimeoutError, socket.timeout, OSError)):
            return  # a client that went away or failed the handshake
        super().handle_error(request, client_address)


def load_seed(path: str) -> list[Json]:
    data = json.loads(Path(path).read_text())
    return data["items"] if isinstance(data, dict) and "items" in data else [data]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--tls-dir", help="write a CA and a server certificate here and serve HTTPS")
    parser.add_argument("--token", action="append", default=[], help="an accepted bearer token (repeatable)")
    parser.add_argument("--eks-cluster", help="also accept EKS tokens (aws eks get-token) for this cluster name")
    parser.add_argument("--seed", action="append", default=[], metavar="FILE.json",
                        help='objects to load at start: {"items": [...]} (repeatable)')
    parser.add_argument("--ignore-stdin", action="store_true", help="do not exit when stdin reaches EOF")
    parser.add_argument("--tick", type=float, default=0.1, help="controller period in seconds (default 0.1)")
    parser.add_argument("--kube-version", default=DEFAULT_KUBE_VERSION,
                        help=f"served gitVersion and schema set (default {DEFAULT_KUBE_VERSION})")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    schemas = Schemas(args.kube_version)
    emulator = Emulator(schemas, args.token, args.eks_cluster, args.kube_version, args.verbose)
    try:
        for seed in args.seed:
            for item in load_seed(seed):
                emulator.store.seed(item)
    except ApiError as err:
        print(f"kube_emulator: seed refused: {err.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError) as err:
        print(f"kube_emulator: cannot load seed: {err}", file=sys.stderr)
        return 1
    tls = None
    ca = "-"
    if args.tls_dir:
        ca_path = write_certificates(Path(args.tls_dir))
        ca = str(ca_path)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(Path(args.tls_dir) / "server.pem", Path(args.tls_dir) / "server-key.pem")
        tls.set_alpn_protocols(["http/1.1"])
    try:
        server = Server((args.host, args.port), emulator, tls)
    except OSError as err:
        print(f"kube_emulator: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    port = server.server_address[1]

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not args.ignore_stdin:

        def watch_stdin() -> None:
            try:
                while sys.stdin.buffer.read1(65536):
                    pass
            except (OSError, ValueError):
                pass
            stop.set()

        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()

    def run_controllers() -> None:
        while not stop.wait(args.tick):
            try:
                emulator.controllers.tick()
            except Exception:  # noqa: BLE001
                traceback.print_exc(file=sys.stderr)

    threading.Thread(target=run_controllers, name="controllers", daemon=True).start()
    serving = threading.Thread(target=server.serve_forever, name="kube-server", daemon=True)
    serving.start()
    print(f"KUBE_READY port={port} ca={ca}", flush=True)
    while not stop.wait(0.5):
        if not serving.is_alive():
            return 1
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # As in moto_server.py: a plain exit would wait for the stdin watcher blocked in read().
    os._exit(status)
