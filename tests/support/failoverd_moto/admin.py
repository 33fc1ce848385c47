"""Test-only HTTP endpoints under ``/_failoverd/``, served by the moto process itself.

This is a WSGI middleware put in front of moto's application; every other path goes to moto.
Bodies are JSON; answers are JSON; a bad request is ``400 {"error": "..."}``.

``POST /_failoverd/backup/recovery-points``
    Body: one object or an array of objects with the field names of the AWS shape
    ``RecoveryPointByBackupVault`` plus ``Region`` (required) and ``AccountId`` (default
    ``123456789012``). Required: ``Region``, ``BackupVaultName`` (an existing vault in that
    region), ``ResourceArn``. Defaults: ``Status`` ``COMPLETED``, ``CreationDate`` now,
    ``CompletionDate`` = ``CreationDate`` when completed, ``RecoveryPointArn`` generated from
    moto's (seedable) random source, ``ResourceType`` from the ARN (``Aurora`` for an RDS
    cluster). Timestamps: ISO 8601 text or epoch seconds. Answer: ``201 {"RecoveryPoints": [...]}``.

    Example::

        {"Region": "us-west-2", "BackupVaultName": "lab-vault",
         "ResourceArn": "arn:aws:rds:us-east-1:123456789012:cluster:lab-hot",
         "SourceBackupVaultArn": "arn:aws:backup:us-east-1:123456789012:backup-vault:hot",
         "CreationDate": "2026-11-28T12:00:00Z", "Status": "COMPLETED"}

``POST /_failoverd/backup/copy-jobs``
    Body: one object or an array, field names of the AWS shape ``CopyJob`` plus ``Region`` (the
    region whose ``ListCopyJobs`` shows the job: the one that ran the copy, usually the source).
    Required: ``Region``, ``ResourceArn``, ``DestinationBackupVaultArn``. Defaults: ``State``
    ``COMPLETED``, ``CreationDate`` now, ``CompletionDate`` for finished states,
    ``StatusMessage`` for ``FAILED``, ``CopyJobId`` generated, ``AccountId`` ``123456789012``.
    Answer: ``201 {"CopyJobs": [...]}``.

Items of an array are stored in order; the first invalid one ends the request with 400 (the
items before it stay stored).

``GET|POST /_failoverd/rds/settings``
    ``{"transition_seconds": N}``: how long ``SwitchoverGlobalCluster`` /
    ``FailoverGlobalCluster`` keep the global cluster ``switching-over`` / ``failing-over``
    before the writer changes (default 0: immediate). Answer: the current settings.

``GET|POST /_failoverd/clock``
    The clock CloudWatch alarms are evaluated by (:mod:`failoverd_moto.alarms`).
    ``{"now": "2026-11-28T12:00:00Z"}`` (ISO 8601 text, naive = UTC, or epoch seconds) freezes it
    there; ``{"now": null}`` makes it the real time again. Answer: ``{"now": "<ISO 8601>",
    "frozen": true|false}``. ``/moto-api/reset`` does not change it.

``GET /_failoverd/route53/resolve?zone=<id>&name=<fqdn>&type=<A|CNAME|...>&samples=<n>``
    What Route 53's name servers would answer to ``samples`` (default 1, at most 100000)
    queries, resolved as ``TestDNSAnswer`` does (:mod:`failoverd_moto.route53`) but with a
    generator of its own seeded with ``seed`` (default 0), so the same request always gets the
    same answer and ``TestDNSAnswer``'s sequence is not disturbed; ``account`` defaults to
    ``123456789012``. Answer: ``{"answers": {"<value>": count, ...}, "health": {"<health check
    id>": true|false}}`` — every value of every answer counted, the health of each health check
    the records involved refer to. An unknown zone is ``404``; a routing policy that is not
    emulated ``400``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

from moto.core.exceptions import ServiceException
from moto.route53.exceptions import NoSuchHostedZone

from . import alarms, backup, rds, route53

PREFIX = "/_failoverd/"
DEFAULT_ACCOUNT = "123456789012"

_SEEDERS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "backup/recovery-points": ("RecoveryPoints", backup.seed_recovery_point),
    "backup/copy-jobs": ("CopyJobs", backup.seed_copy_job),
}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clock_time(value: Any) -> datetime | None:
    """``{"now": ...}`` of ``POST /_failoverd/clock``: ISO 8601 text, epoch seconds, or null."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as err:
            raise ValueError(f"now: not an ISO 8601 timestamp: {value!r}") from err
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise ValueError(f"now: expected ISO 8601 text, epoch seconds or null, got {value!r}")


def _query(environ: dict[str, Any], name: str, default: str | None = None) -> str:
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    if values:
        return values[0]
    if default is None:
        raise ValueError(f"query parameter {name} is required")
    return default


def _integer(environ: dict[str, Any], name: str, default: str) -> int:
    text = _query(environ, name, default)
    try:
        return int(text)
    except ValueError as err:
        raise ValueError(f"{name} must be an integer, got {text!r}") from err


class AdminMiddleware:
    """Serve ``/_failoverd/...`` and pass everything else to ``app``."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX):
            return self.app(environ, start_response)
        try:
            status, body = self._handle(environ["REQUEST_METHOD"], path[len(PREFIX) :].strip("/"), environ)
        except (backup.SeedError, ValueError) as err:
            status, body = 400, {"error": str(err)}
        payload = json.dumps(body, default=_json_default).encode()
        reason = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
        start_response(
            f"{status} {reason[status]}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    @staticmethod
    def _body(environ: dict[str, Any]) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except json.JSONDecodeError as err:
            raise ValueError(f"body is not JSON: {err}") from err

    def _handle(self, method: str, route: str, environ: dict[str, Any]) -> tuple[int, Any]:
        if route in _SEEDERS:
            if method != "POST":
                return 405, {"error": "use POST"}
            key, seed = _SEEDERS[route]
            body = self._body(environ)
            items = body if isinstance(body, list) else [body]
            if not all(isinstance(i, dict) for i in items):
                raise ValueError("body must be a JSON object or an array of objects")
            return 201, {key: [seed(item) for item in items]}
        if route == "rds/settings":
            if method == "POST":
                body = self._body(environ)
                if not isinstance(body, dict) or set(body) - set(rds.SETTINGS):
                    raise ValueError(f"settings: only {sorted(rds.SETTINGS)} may be set")
                for key, value in body.items():
                    if not isinstance(value, (int, float)) or value < 0:
                        raise ValueError(f"{key} must be a non-negative number")
                    rds.SETTINGS[key] = float(value)
            elif method != "GET":
                return 405, {"error": "use GET or POST"}
            return 200, dict(rds.SETTINGS)
        if route == "clock":
            if method == "POST":
                body = self._body(environ)
                if not isinstance(body, dict) or set(body) != {"now"}:
                    raise ValueError('clock: the body must be {"now": <ISO 8601 | epoch seconds | null>}')
                alarms.set_clock(_clock_time(body["now"]))
            elif method != "GET":
                return 405, {"error": "use GET or POST"}
            return 200, {
                "now": alarms.now().replace(tzinfo=timezone.utc).isoformat(),
                "frozen": alarms.clock_frozen(),
            }
        if route == "route53/resolve":
            if method != "GET":
                return 405, {"error": "use GET"}
            try:
                return 200, route53.resolve_samples(
                    _query(environ, "account", DEFAULT_ACCOUNT),
                    _query(environ, "zone"),
                    _query(environ, "name"),
                    _query(environ, "type"),
                    _integer(environ, "samples", "1"),
                    _integer(environ, "seed", "0"),
                )
            except NoSuchHostedZone as err:
                return 404, {"error": err.message}
            except ServiceException as err:
                return 400, {"error": f"{err.code}: {err.message}"}
        return 404, {"error": f"no such endpoint: {PREFIX}{route}"}
