"""CloudWatch over Smithy RPC v2 CBOR, the protocol the AWS SDK for Rust speaks to CloudWatch.

moto 5.2.5 serves CloudWatch's ``query`` and ``awsJson1_0`` protocols only; the Rust SDK sends

    POST /service/GraniteServiceVersion20100801/operation/<Operation>
    smithy-protocol: rpc-v2-cbor
    Content-Type: application/cbor          (body: the CBOR-encoded input structure)

which moto answers with 404. :class:`RpcV2CborMiddleware` (a WSGI middleware in front of moto)
serves those paths:

1. the CBOR body is decoded (an empty body is an empty input; tag 1 epoch-seconds timestamps
   become numbers, byte strings base64 text) into the ``awsJson1_0`` document of the same input;
2. that JSON request (``X-Amz-Target: GraniteServiceVersion20100801.<Operation>``, path ``/``,
   the original ``Authorization`` so moto picks the same account and region) goes through moto's
   own application, so ``moto.cloudwatch.responses.CloudWatchResponse`` and the CloudWatch backend
   handle it exactly as they handle boto3's JSON requests;
3. moto's JSON answer is re-encoded to CBOR following the operation's output shape in the botocore
   model: timestamps as CBOR tag 1 (epoch seconds), ``double`` members as floats, integers as
   integers, blobs as byte strings. Every answer has ``smithy-protocol: rpc-v2-cbor`` and
   ``Content-Type: application/cbor``; an operation without output answers an empty map.

Errors keep moto's HTTP status and become ``{"__type": "com.amazonaws.cloudwatch#<Shape>",
"message": ...}``; since CloudWatch is ``awsQueryCompatible``, the ``x-amzn-query-error:
<Code>;<Sender|Receiver>`` header (which the SDKs use for the error code) is passed on, or derived
from the error shape when moto did not send one. Protocol-level failures: an unknown operation is
``404 smithy.framework#UnknownOperationException``, a body that is not a CBOR map
``400 smithy.framework#SerializationException``. A ``Content-Encoding: gzip`` body (the SDKs
compress large ``PutMetricData`` requests) is decompressed first. An unsigned request is taken as
one for us-east-1 (moto finds account and region in the SigV4 credential scope).

Only CloudWatch (target prefix ``GraniteServiceVersion20100801``) is served; any other
``/service/.../operation/...`` path goes to moto untouched.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import math
import re
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

import botocore.session
import cbor2
from botocore.model import OperationModel, ServiceModel, Shape

SMITHY_PROTOCOL = "rpc-v2-cbor"
CBOR_CONTENT_TYPE = "application/cbor"
EPOCH_SECONDS_TAG = 1

#: RPC v2 service shape name (the botocore ``targetPrefix``) -> botocore service name.
SERVICES = {"GraniteServiceVersion20100801": "cloudwatch"}
#: Smithy namespace used in ``__type`` of the errors, per botocore service name.
NAMESPACES = {"cloudwatch": "com.amazonaws.cloudwatch"}

_PATH = re.compile(r"^/service/(?P<service>[^/]+)/operation/(?P<operation>[^/]+)/?$")

_MODELS: dict[str, ServiceModel] = {}
_MODELS_LOCK = threading.Lock()


def service_model(name: str) -> ServiceModel:
    """The botocore model of ``name`` (loaded once: the pinned botocore's copy)."""
    with _MODELS_LOCK:
        if name not in _MODELS:
            _MODELS[name] = botocore.session.get_session().get_service_model(name)
        return _MODELS[name]


class ProtocolError(Exception):
    def __init__(self, status: int, shape: str, message: str):
        super().__init__(message)
        self.status = status
        self.shape = shape
        self.message = message


# ------------------------------------------------------------------------- CBOR -> JSON


def _to_json(value: Any) -> Any:
    """A decoded CBOR input value as the ``awsJson1_0`` document holds it."""
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, cbor2.CBORTag):
        if value.tag == EPOCH_SECONDS_TAG and isinstance(value.value, (int, float)):
            return value.value
        raise ProtocolError(400, "SerializationException", f"unsupported CBOR tag {value.tag}")
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value is cbor2.undefined:
        return None
    return value


def decode_request(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        value = cbor2.loads(body)
    except (cbor2.CBORDecodeError, ValueError, EOFError) as err:
        raise ProtocolError(400, "SerializationException", f"request body is not CBOR: {err}") from err
    if not isinstance(value, dict):
        raise ProtocolError(400, "SerializationException", "request body is not a CBOR map")
    return _to_json(value)


# ------------------------------------------------------------------------- JSON -> CBOR


def _epoch(value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, (int, float)):
        number: int | float = value
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            number = parsed.timestamp()
    elif isinstance(value, datetime):
        number = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(number, float) and number.is_integer():
        return int(number)
    return number


def _float(value: Any) -> float:
    if isinstance(value, str):  # JSON spells the non-finite doubles as strings
        return float({"Infinity": "inf", "-Infinity": "-inf"}.get(value, value))
    return float(value)


def to_cbor_value(shape: Shape | None, value: Any) -> Any:
    """``value`` (moto's JSON answer for ``shape``) as the CBOR data item RPC v2 sends."""
    if value is None:
        return None
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure":
        members = shape.members  # type: ignore[attr-defined]
        # Members the model does not know (moto extras) are left out, like AWS would.
        return {
            name: to_cbor_value(members[name], item)
            for name, item in value.items()
            if item is not None and name in members
        }
    if kind == "list":
        return [to_cbor_value(shape.member, item) for item in value]  # type: ignore[attr-defined]
    if kind == "map":
        return {str(k): to_cbor_value(shape.value, v) for k, v in value.items()}  # type: ignore[attr-defined]
    if kind == "timestamp":
        return cbor2.CBORTag(EPOCH_SECONDS_TAG, _epoch(value))
    if kind in ("double", "float"):
        return _float(value)
    if kind in ("integer", "long", "short", "byte"):
        return int(value)
    if kind == "boolean":
        return bool(value) if not isinstance(value, str) else value.lower() == "true"
    if kind == "blob":
        return base64.b64decode(value) if isinstance(value, str) else bytes(value)
    if kind == "string":
        return value if isinstance(value, str) else str(value)
    return value


def encode(value: Any) -> bytes:
    # Definite lengths, floats as 64-bit doubles (cbor2's default, non-canonical encoding).
    return cbor2.dumps(value)


# ------------------------------------------------------------------------- errors


def error_shape(model: ServiceModel, operation: OperationModel | None, code: str) -> Shape | None:
    """The error shape for ``code`` (a shape name or an ``awsQueryError`` code), preferring the
    operation's own errors: CloudWatch has two shapes with the code ``ResourceNotFound``."""
    candidates = list(operation.error_shapes) if operation is not None else []
    candidates += list(model.error_shapes)
    for shape in candidates:
        if shape.name == code:
            return shape
    for shape in candidates:
        if shape.metadata.get("error", {}).get("code") == code:
            return shape
    return None


def error_answer(
    model: ServiceModel,
    operation: OperationModel | None,
    status: int,
    code: str,
    message: str,
    query_error: str | None,
) -> tuple[dict[str, Any], str | None]:
    """The CBOR error map and the ``x-amzn-query-error`` header for an error ``code``."""
    shape = error_shape(model, operation, code)
    namespace = NAMESPACES.get(model.service_name, model.service_name)
    body: dict[str, Any] = {"__type": f"{namespace}#{shape.name if shape is not None else code}"}
    members = shape.members if shape is not None else {}  # type: ignore[attr-defined]
    body["Message" if "Message" in members and "message" not in members else "message"] = message
    if query_error is None and model.metadata.get("awsQueryCompatible") is not None:
        query_code = code
        if shape is not None:
            query_code = shape.metadata.get("error", {}).get("code") or shape.name
        query_error = f"{query_code};{'Sender' if status < 500 else 'Receiver'}"
    return body, query_error


# ------------------------------------------------------------------------- middleware


class _Captured:
    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[str, str]] = []

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
        self.status = int(status.split(" ", 1)[0])
        self.headers = list(headers)
        return lambda _data: None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class RpcV2CborMiddleware:
    """Serve ``POST /service/<Service>/operation/<Operation>`` (RPC v2 CBOR) through moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        match = _PATH.match(environ.get("PATH_INFO", ""))
        if not match or match["service"] not in SERVICES or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        model = service_model(SERVICES[match["service"]])
        headers: list[tuple[str, str]] = []
        try:
            status, body, headers = self._handle(environ, model, match["service"], match["operation"])
        except ProtocolError as err:
            status = err.status
            body, query_error = error_answer(model, None, err.status, err.shape, err.message, None)
            if err.shape in ("UnknownOperationException", "SerializationException"):
                # protocol errors, not CloudWatch's: the SDKs take __type as it is
                body["__type"] = f"smithy.framework#{err.shape}"
                query_error = None
            headers = [("x-amzn-query-error", query_error)] if query_error else []
        payload = encode(body)
        start_response(
            f"{status} {_REASONS.get(status, 'Error')}",
            [
                ("smithy-protocol", SMITHY_PROTOCOL),
                ("Content-Type", CBOR_CONTENT_TYPE),
                ("Content-Length", str(len(payload))),
                *headers,
            ],
        )
        return [payload]

    def _handle(
        self, environ: dict[str, Any], model: ServiceModel, service: str, operation: str
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        if operation not in model.operation_names:
            raise ProtocolError(404, "UnknownOperationException", f"unknown operation {operation}")
        operation_model: OperationModel = model.operation_model(operation)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            raw = environ["wsgi.input"].read(length)
        elif environ.get("wsgi.input_terminated"):  # chunked
            raw = environ["wsgi.input"].read()
        else:
            raw = b""
        encoding = environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding == "gzip":  # the SDKs compress large PutMetricData bodies (requestCompression)
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as err:
                raise ProtocolError(400, "SerializationException", f"bad gzip body: {err}") from err
        elif encoding not in ("", "identity"):
            raise ProtocolError(400, "SerializationException", f"unsupported Content-Encoding {encoding}")
        document = json.dumps(decode_request(raw)).encode()

        inner = dict(environ)
        for key in ("HTTP_SMITHY_PROTOCOL", "HTTP_ACCEPT", "HTTP_CONTENT_ENCODING"):
            inner.pop(key, None)
        inner.update(
            {
                "PATH_INFO": "/",
                "RAW_URI": "/",
                "REQUEST_URI": "/",
                "QUERY_STRING": "",
                "CONTENT_TYPE": f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.0')}",
                "CONTENT_LENGTH": str(len(document)),
                "HTTP_X_AMZ_TARGET": f"{service}.{operation}",
                "wsgi.input": io.BytesIO(document),
            }
        )
        if not inner.get("HTTP_AUTHORIZATION"):
            # moto finds service and region in the credential scope; an unsigned request is taken
            # as one for us-east-1 with the default account's credentials.
            inner["HTTP_AUTHORIZATION"] = (
                f"AWS4-HMAC-SHA256 Credential=testing/20000101/us-east-1/"
                f"{model.signing_name}/aws4_request, SignedHeaders=host, Signature=unsigned"
            )
        captured = _Captured()
        chunks = self.app(inner, captured.start_response)
        try:
            answer = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        passed = [(k, v) for k, v in captured.headers if k.lower() == "x-amzn-requestid"]
        try:
            value = json.loads(answer) if answer.strip() else {}
        except ValueError:
            value = None
        if 200 <= captured.status < 300:
            if not isinstance(value, dict):
                raise ProtocolError(500, "InternalFailure", f"moto's answer is not JSON: {answer[:200]!r}")
            output = operation_model.output_shape
            return captured.status, to_cbor_value(output, value) if output is not None else {}, passed
        code, message = "InternalFailure", answer.decode(errors="replace")[:500]
        if isinstance(value, dict):
            code = str(value.get("__type") or code).rsplit("#", 1)[-1]
            message = str(value.get("message") or value.get("Message") or "")
        body, query_error = error_answer(
            model, operation_model, captured.status, code, message, captured.header("x-amzn-query-error")
        )
        if query_error:
            passed.append(("x-amzn-query-error", query_error))
        return captured.status, body, passed
