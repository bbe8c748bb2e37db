"""Write-once objects in the archive bucket: small documents and streamed recordings.

Every write is conditional on the object not existing (``if_generation_match=0``); an object
that is already there counts as success, so redelivered and duplicated messages change nothing
(docs/architecture.md, "Archive contract").

Nothing here ever deletes or overwrites an object: the archivers hold only
``roles/storage.objectCreator`` and ``roles/storage.objectViewer`` on the bucket. A bad upload
is therefore never *finalized*, rather than removed afterwards:

* Recordings are streamed through a resumable upload (``BlobWriter``) of unknown total size.
  Cloud Storage creates the object only when the final request of the session is committed;
  ``BlobWriter.write`` only ever sends full chunks, as ``bytes a-b/*`` (not final), and only
  ``BlobWriter.close`` sends the final one (``bytes a-b/N`` or ``bytes */N``), also when the
  size is an exact multiple of the chunk size (google-cloud-storage ``_media/_upload.py``,
  ``get_next_chunk``).
* ``VerifiedChunks`` checks the bytes as they pass (declared size, expected CRC32C/MD5 if the
  caller knows them, a signature of the first bytes) and runs its final checks when the source
  is exhausted, *before* it ends the iteration. So ``close`` is reached only by content that
  passed every check; anything else cancels the session (a ``DELETE`` on the session URI,
  which removes no object) and the object never exists.
* The final request carries ``X-Goog-Hash: crc32c=...`` of the bytes sent (``checksum=
  "crc32c"``), so Cloud Storage itself refuses (400) to finalize an object whose bytes differ
  from what was streamed.
* After the final request the object's metadata is compared with what was streamed. A
  difference there cannot be undone without ``storage.objects.delete``: it raises
  ``StoredObjectMismatch`` (the object is left in place, for an operator) instead.

Emulator note: fake-gcs-server enforces ``if_generation_match=0`` for single-request uploads
but ignores preconditions on resumable uploads, and it does not check ``X-Goog-Hash``.
``stream_once`` therefore checks that the object is absent before it streams; on Cloud Storage
the precondition also holds against a concurrent writer (the loser's upload fails with 412 and
counts as already stored).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import google_crc32c
from google.api_core import exceptions as gexc
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from google.cloud.storage.fileio import BlobWriter

DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024  # a multiple of 256 KiB (resumable uploads require it)
SIGNATURE_BYTES = 16
# Above this, ``Blob.upload_from_string`` switches to a resumable upload that *deletes* the
# object when the library's checksum check fails after finalization; ``write_once`` streams
# such documents itself instead (google-cloud-storage ``blob.py``, ``_do_resumable_upload``).
MAX_SINGLE_REQUEST_BYTES = 8 * 1024 * 1024


class ArchiveStoreError(Exception):
    """Base of the archive store's own errors."""


class ContentRejected(ArchiveStoreError):
    """The streamed content failed a check before the upload was finalized; nothing was
    stored (the upload session was cancelled).

    ``check``: ``"signature"`` (not the expected kind of content), ``"size"`` or
    ``"checksum"`` (not what the source declared: a broken or different download).
    """

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


class StoredObjectMismatch(ArchiveStoreError):
    """Cloud Storage finalized an object whose metadata differs from what was streamed.

    Cannot happen when Cloud Storage validates the final request's ``X-Goog-Hash``; the
    object is left in place (the archivers cannot delete) and must be looked at by an operator.
    """


@dataclass(frozen=True)
class StoredObject:
    """What the bucket says about an object."""

    name: str
    uri: str
    generation: int | None
    size: int | None
    crc32c: str | None
    md5: str | None
    content_type: str | None
    created: bool  # False: it was already there (a redelivery, or another writer won)
    # When Cloud Storage created the object (``timeCreated``): the same on every later look,
    # so it can be indexed without a redelivery changing anything. ``None``: not reported.
    time_created: datetime | None = None


@dataclass(frozen=True)
class Expected:
    """What the source declared about the content, checked before the upload is finalized.

    Checksums are base64, as Cloud Storage reports them. ``None``: not declared, not checked.
    """

    size: int | None = None
    crc32c: str | None = None
    md5: str | None = None


class _Digests:
    def __init__(self) -> None:
        self.size = 0
        self.md5 = hashlib.md5()  # noqa: S324 - an integrity checksum GCS reports, not security
        self.crc32c = google_crc32c.Checksum()
        self.head = b""

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.md5.update(chunk)
        self.crc32c.update(chunk)
        if len(self.head) < SIGNATURE_BYTES:
            self.head += chunk[: SIGNATURE_BYTES - len(self.head)]

    def md5_b64(self) -> str:
        return base64.b64encode(self.md5.digest()).decode()

    def crc32c_b64(self) -> str:
        return base64.b64encode(self.crc32c.digest()).decode()


class VerifiedChunks(Iterator[bytes]):
    """The source's chunks, checked as they pass; raises ``ContentRejected`` on a failure.

    The checks that need the whole content (size, checksums, the signature of a short
    content) run when the source is exhausted, *before* this iterator ends: a consumer that
    finalizes its upload only after the iteration ended normally never finalizes bad content.
    Exceptions of the source itself (a download cut short) propagate unchanged.
    """

    def __init__(
        self,
        source: Iterable[bytes],
        *,
        expected: Expected | None = None,
        signature_check: Callable[[bytes], bool] | None = None,
    ) -> None:
        self._source = iter(source)
        self._expected = expected or Expected()
        self._signature_check = signature_check
        self._signature_checked = signature_check is None
        self.digests = _Digests()
        self.complete = False  # True once the source ended and every final check passed

    def __iter__(self) -> VerifiedChunks:
        return self

    def __next__(self) -> bytes:
        while True:
            try:
                chunk = next(self._source)
            except StopIteration:
                self._final_checks()
                self.complete = True
                raise
            if chunk:
                break
        self.digests.update(chunk)
        declared = self._expected.size
        if declared is not None and self.digests.size > declared:
            raise ContentRejected("size", f"more than the {declared} bytes declared")
        if not self._signature_checked and self.digests.size >= SIGNATURE_BYTES:
            self._check_signature()
        return chunk

    def _check_signature(self) -> None:
        self._signature_checked = True
        assert self._signature_check is not None  # noqa: S101  narrows a type; under -O None() still raises
        if not self._signature_check(self.digests.head):
            raise ContentRejected(
                "signature", "the content does not start with the expected signature"
            )

    def _final_checks(self) -> None:
        if not self._signature_checked:
            self._check_signature()
        expected, digests = self._expected, self.digests
        if expected.size is not None and digests.size != expected.size:
            raise ContentRejected("size", f"{digests.size} bytes, {expected.size} declared")
        if expected.crc32c is not None and digests.crc32c_b64() != expected.crc32c:
            raise ContentRejected("checksum", "CRC32C differs from the declared one")
        if expected.md5 is not None and digests.md5_b64() != expected.md5:
            raise ContentRejected("checksum", "MD5 differs from the declared one")


class _ResumableUpload(BlobWriter):
    """A ``BlobWriter`` that finalizes only on an explicit ``close()``.

    ``io.IOBase`` closes an unclosed file when it is garbage-collected, and
    ``BlobWriter.close`` *finalizes the upload with whatever is buffered*: a writer abandoned
    after a failed check would create the bad (or empty) object later, from the garbage
    collector. ``__del__`` here does nothing, and ``cancel`` ends the session instead.
    """

    def __del__(self) -> None:
        pass

    def cancel(self) -> None:
        """End the unfinished upload with a ``DELETE`` on its session URI (Cloud Storage
        answers 499): no object was created, none is deleted, no object permission is used.

        ``BlobWriter.terminate`` would send that ``DELETE`` to the session's *initiation* URL
        (``upload.upload_url``) rather than to the session (``upload.resumable_url``)
        (google-cloud-storage 3.x ``fileio.py``). Should the library's internals change,
        nothing is sent: an uncommitted session creates no object and expires on its own.
        """
        try:
            started = getattr(self, "_upload_and_transport", None)
            if started:
                upload, transport = started
                session_uri = getattr(upload, "resumable_url", None)
                if isinstance(session_uri, str) and session_uri:
                    transport.delete(session_uri, timeout=30)
        finally:
            buffer = getattr(self, "_buffer", None)
            if buffer is not None:
                buffer.close()  # closed: nothing can finalize it any more


def _precondition_failed(error: BaseException) -> bool:
    if isinstance(error, gexc.PreconditionFailed):
        return True
    response = getattr(error, "response", None)
    return isinstance(error, InvalidResponse) and getattr(response, "status_code", None) == 412


class ArchiveStore:
    """The archive bucket. Thread-safe: it keeps no state besides the client's bucket.

    Needs ``storage.objects.create`` and ``get`` on the bucket, nothing more: it never lists,
    deletes, overwrites or patches an object (measured: tests/integration/test_least_privilege.py).
    """

    def __init__(self, bucket: storage.Bucket, *, chunk_size: int = DEFAULT_CHUNK_BYTES) -> None:
        if chunk_size <= 0 or chunk_size % (256 * 1024):
            raise ValueError("chunk_size must be a positive multiple of 256 KiB")
        self._bucket = bucket
        self._chunk_size = chunk_size

    @property
    def bucket_name(self) -> str:
        return str(self._bucket.name)

    def uri(self, name: str) -> str:
        return f"gs://{self._bucket.name}/{name}"

    def _described(self, blob: storage.Blob, *, created: bool) -> StoredObject:
        return StoredObject(
            name=blob.name,
            uri=self.uri(blob.name),
            generation=blob.generation,
            size=blob.size,
            crc32c=blob.crc32c,
            md5=blob.md5_hash,
            content_type=blob.content_type,
            created=created,
            time_created=blob.time_created,
        )

    def existing(self, name: str) -> StoredObject | None:
        """The object's metadata, or ``None`` if there is no such object."""
        blob = self._bucket.get_blob(name)
        return None if blob is None else self._described(blob, created=False)

    def write_once(self, name: str, data: bytes, *, content_type: str) -> StoredObject:
        """Store ``data`` unless ``name`` exists (``if_generation_match=0``); either way the
        object as the bucket describes it (``created`` False when it was already there).

        One request (the library sends the CRC32C with it, and Cloud Storage refuses a
        mismatch) up to ``MAX_SINGLE_REQUEST_BYTES``; larger documents are streamed like
        recordings.
        """
        if len(data) > MAX_SINGLE_REQUEST_BYTES:
            view = memoryview(data)
            chunks = (
                bytes(view[i : i + self._chunk_size]) for i in range(0, len(data), self._chunk_size)
            )
            return self.stream_once(
                name, chunks, content_type=content_type, expected=Expected(size=len(data))
            )
        blob = self._bucket.blob(name)
        try:
            blob.upload_from_string(data, content_type=content_type, if_generation_match=0)
        except gexc.PreconditionFailed:
            stored = self.existing(name)  # already there: describe it (its timeCreated too)
            if stored is not None:
                return stored
            return StoredObject(name, self.uri(name), None, None, None, None, None, created=False)
        return self._described(blob, created=True)

    def stream_once(
        self,
        name: str,
        chunks: Iterable[bytes],
        *,
        content_type: str,
        signature_check: Callable[[bytes], bool] | None = None,
        expected: Expected | None = None,
    ) -> StoredObject:
        """Stream ``chunks`` into ``name`` unless it exists; finalize only verified content.

        Holds at most about two chunks. Content that fails a check (``signature_check`` on
        the first ``SIGNATURE_BYTES``, ``expected``) raises ``ContentRejected``; an exception
        from ``chunks`` propagates unchanged. Either way the upload session is cancelled and
        no object is created. ``StoredObjectMismatch``: see there.
        """
        existing = self.existing(name)
        if existing is not None:
            return existing
        blob = self._bucket.blob(name)
        writer = _ResumableUpload(
            blob,
            chunk_size=self._chunk_size,
            content_type=content_type,
            if_generation_match=0,
            checksum="crc32c",  # sent as X-Goog-Hash on the final request: GCS checks it
        )
        verified = VerifiedChunks(chunks, expected=expected, signature_check=signature_check)
        try:
            for chunk in verified:
                writer.write(chunk)  # full chunks only, never the final request
            if not verified.complete:  # unreachable: a for loop ends only on StopIteration
                raise ContentRejected("size", "the content was not verified to its end")
            writer.close()  # the final request: the only one that can create the object
        except DataCorruption as corruption:
            # The library's own check of the finalized object's CRC32C; GCS checked the same
            # value first, so this means the object differs from what was sent.
            with contextlib.suppress(Exception):
                writer.cancel()
            raise StoredObjectMismatch(
                f"{name}: {corruption} (left in place: the archive cannot delete)"
            ) from None
        except BaseException as error:
            with contextlib.suppress(Exception):
                writer.cancel()
            if _precondition_failed(error):
                stored = self.existing(name)
                if stored is not None:
                    return stored
            raise
        return self._checked(blob, verified.digests, content_type)

    def _checked(self, blob: storage.Blob, digests: _Digests, content_type: str) -> StoredObject:
        """The finalized object, compared with what was streamed (a reload, no download)."""
        blob.reload()
        problems = []
        if blob.size != digests.size:
            problems.append(f"size {blob.size} != {digests.size} streamed")
        if blob.crc32c is not None and blob.crc32c != digests.crc32c_b64():
            problems.append("CRC32C differs")
        if blob.crc32c is None and blob.md5_hash is None:
            problems.append("the bucket reported no checksum")
        if blob.md5_hash is not None and blob.md5_hash != digests.md5_b64():
            problems.append("MD5 differs")
        if (blob.content_type or "").split(";")[0].strip() != content_type:
            problems.append(f"content type {blob.content_type!r}")
        if problems:
            raise StoredObjectMismatch(
                f"{blob.name}: "
                + "; ".join(problems)
                + " (left in place: the archive cannot delete)"
            )
        return self._described(blob, created=True)
