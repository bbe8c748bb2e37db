"""What the functions' real code asks Google for, recorded on the wire to the emulators.

``GoogleCallRecorder.installed()`` wraps every gRPC channel created while it is installed
(``grpc.insecure_channel`` / ``grpc.secure_channel``: the Firestore and Pub/Sub clients make
theirs with these, against the emulators and against Google alike) in a client interceptor,
and wraps ``requests.Session.request`` (google-cloud-storage's transport, the resumable-upload
sessions included) for requests to the storage emulator's host. Each request becomes one
``GoogleCall``: the API method as Google's IAM tables name it, the variant that decides its
permission (a Firestore write's precondition, an upload's ``ifGenerationMatch``) and the
resource it names. Nothing is changed on the way: the request goes on as it came.

Only clients built while the recorder is installed are seen, so the harness builds the
functions' clients inside it (``handlers.wiring.reset()``) and does its own setup inside
``paused()``. ``tests/support/iam.py`` maps each call to the IAM permissions it needs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import grpc
import requests

FIRESTORE = "google.firestore.v1.Firestore/"
PUBLISHER = "google.pubsub.v1.Publisher/"


@dataclass(frozen=True)
class GoogleCall:
    """One request to a Google API (an emulator here).

    ``operation``: the key of ``tests.support.iam.CALL_PERMISSIONS``, e.g.
    ``google.firestore.v1.Firestore/Commit:create`` or
    ``storage.objects.insert:ifGenerationMatch=0``.
    ``resource``: ``(kind, name)`` as the request names it: ``("firestore_database",
    "projects/p/databases/(default)")``, ``("topic", "projects/p/topics/t")``, ``("bucket", "b")``.
    """

    operation: str
    resource: tuple[str, str]
    function: str  # whose code sent it (the harness says which function it is driving)


def _pb(message: Any) -> Any:
    """The protobuf message of a proto-plus message (the generated clients send those)."""
    pb = getattr(type(message), "pb", None)
    return pb(message) if callable(pb) else message


def _write_variant(write: Any) -> str:
    """A Firestore ``Write``'s variant as Firestore's IAM table distinguishes them."""
    if write.WhichOneof("operation") == "delete":
        return "delete"
    if not write.HasField("current_document"):
        return "upsert"  # set() without a precondition: creates or replaces
    condition = write.current_document.WhichOneof("condition_type")
    if condition == "exists":
        return "create" if not write.current_document.exists else "update"
    if condition == "update_time":
        return "update"  # only an existing document has an update time
    return "upsert"


def grpc_calls(method: str, request: Any) -> list[tuple[str, tuple[str, str]]]:
    """The ``(operation, resource)`` pairs of one gRPC request (a Commit: one per kind of write)."""
    pb = _pb(request)
    method = method.removeprefix("/")
    if method.startswith(FIRESTORE):
        name = method
        database = getattr(pb, "database", "") or "/".join(
            str(getattr(pb, "parent", "")).split("/")[:4]
        )
        resource = ("firestore_database", database)
        if name.endswith("/Commit"):
            variants = sorted({_write_variant(write) for write in pb.writes}) or ["empty"]
            return [(f"{name}:{variant}", resource) for variant in variants]
        return [(name, resource)]
    if method.startswith(PUBLISHER):
        return [(method, ("topic", str(getattr(pb, "topic", ""))))]
    return [(f"grpc:{method}", ("unknown", ""))]


def storage_call(method: str, url: str) -> tuple[str, tuple[str, str]]:
    """The JSON API method of one HTTP request of google-cloud-storage, by method and path."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    path = [unquote(p) for p in parts.path.split("/") if p]
    for prefix in (["upload"], ["download"], []):
        if (
            path[: len(prefix) + 3] == [*prefix, "storage", "v1", "b"]
            and len(path) > len(prefix) + 3
        ):
            rest = path[len(prefix) + 3 :]
            break
    else:
        return (f"http:{method} {parts.path}", ("unknown", ""))
    bucket, objects = rest[0], rest[1:]
    resource = ("bucket", bucket)
    if "upload_id" in query:  # a request on a resumable upload's session URI
        return (f"storage.resumableSession:{method}", resource)
    if objects == ["o"]:
        if method == "POST":  # simple, multipart or the start of a resumable upload
            new_only = query.get("ifGenerationMatch") == ["0"]
            return (
                "storage.objects.insert:" + ("ifGenerationMatch=0" if new_only else "any"),
                resource,
            )
        if method == "GET":
            return ("storage.objects.list", resource)
    elif len(objects) == 2 and objects[0] == "o":
        json_method = {"GET": "get", "DELETE": "delete", "PATCH": "patch", "PUT": "update"}
        if method in json_method:
            return (f"storage.objects.{json_method[method]}", resource)
    elif not objects and method == "GET":
        return ("storage.buckets.get", resource)
    return (f"http:{method} {parts.path}", resource)


class _Interceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    def __init__(self, record: Callable[[str, Any], None]) -> None:
        self._record = record

    def intercept_unary_unary(self, continuation, client_call_details, request):
        self._record(client_call_details.method, request)
        return continuation(client_call_details, request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        self._record(client_call_details.method, request)
        return continuation(client_call_details, request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(client_call_details, self._each(client_call_details, request_iterator))

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(client_call_details, self._each(client_call_details, request_iterator))

    def _each(self, details: Any, requests_: Iterator[Any]) -> Iterator[Any]:
        for request in requests_:
            self._record(details.method, request)
            yield request


class GoogleCallRecorder:
    """Records the Google API calls of the code it runs around (see the module docstring)."""

    def __init__(self, storage_host: str) -> None:
        self.storage_netloc = urlsplit(
            storage_host if "://" in storage_host else f"http://{storage_host}"
        ).netloc
        self.calls: list[GoogleCall] = []
        self.function = ""  # set by the harness: the function whose code runs now
        self._lock = threading.Lock()
        self._paused = False

    def _add(self, operation: str, resource: tuple[str, str]) -> None:
        if self._paused:
            return
        if not self.function:
            raise AssertionError(f"{operation} recorded while no function is being driven")
        with self._lock:
            self.calls.append(GoogleCall(operation, resource, self.function))

    def _record_grpc(self, method: str, request: Any) -> None:
        for operation, resource in grpc_calls(method, request):
            self._add(operation, resource)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The harness's own setup and checks: not the function's calls."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[GoogleCallRecorder]:
        interceptor = _Interceptor(self._record_grpc)
        originals = (grpc.insecure_channel, grpc.secure_channel, requests.Session.request)
        insecure, secure, session_request = originals

        def insecure_channel(*args: Any, **kwargs: Any) -> grpc.Channel:
            return grpc.intercept_channel(insecure(*args, **kwargs), interceptor)

        def secure_channel(*args: Any, **kwargs: Any) -> grpc.Channel:
            return grpc.intercept_channel(secure(*args, **kwargs), interceptor)

        recorder = self

        def request(session: requests.Session, method: str, url: str, *args: Any, **kwargs: Any):
            if urlsplit(str(url)).netloc == recorder.storage_netloc:
                recorder._add(*storage_call(method.upper(), str(url)))
            return session_request(session, method, url, *args, **kwargs)

        grpc.insecure_channel = insecure_channel  # type: ignore[assignment]
        grpc.secure_channel = secure_channel  # type: ignore[assignment]
        requests.Session.request = request  # type: ignore[method-assign]
        try:
            yield self
        finally:
            grpc.insecure_channel, grpc.secure_channel = insecure, secure  # type: ignore[misc]
            requests.Session.request = session_request  # type: ignore[method-assign]
