"""Write-once objects in the archive bucket: small documents and streamed recordings.

Every write is conditional on the object not existing (``if_generation_match=0``); an object
that is already there counts as success, so redelivered and duplicated messages change nothing
(ARCHITECTURE.md, "Archive contract").

Recordings are streamed through a resumable upload (``BlobWriter``) that holds at most about
two chunks in memory, whatever the size of the recording, while MD5 and CRC32C are computed on
the way. After the upload the stored object is checked against what was streamed: size,
checksums, content type and a signature of its first bytes; an object that does not match is
deleted (conditional on its generation) and ``StoredObjectMismatch`` raised.

Emulator note: fake-gcs-server enforces ``if_generation_match=0`` for single-request uploads
but ignores preconditions on resumable uploads and deletes. ``stream_upload`` therefore checks
that the object is absent before it streams; on Cloud Storage the precondition also holds
against a concurrent writer (the loser's upload fails with 412 and counts as already stored).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import google_crc32c
from google.api_core import exceptions as gexc
from google.cloud import storage
from google.cloud.storage.exceptions import InvalidResponse
from google.cloud.storage.fileio import BlobWriter

DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024  # a multiple of 256 KiB (resumable uploads require it)
SIGNATURE_BYTES = 16


class ArchiveStoreError(Exception):
    """Base of the archive store's own errors."""


class ContentRejected(ArchiveStoreError):
    """The streamed content failed the caller's signature check; nothing was stored."""


class StoredObjectMismatch(ArchiveStoreError):
    """The stored object does not match what was streamed; it has been deleted."""


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


def _precondition_failed(error: BaseException) -> bool:
    if isinstance(error, gexc.PreconditionFailed):
        return True
    response = getattr(error, "response", None)
    return isinstance(error, InvalidResponse) and getattr(response, "status_code", None) == 412


class ArchiveStore:
    """The archive bucket. Thread-safe: it keeps no state besides the client's bucket."""

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
        )

    def existing(self, name: str) -> StoredObject | None:
        """The object's metadata, or ``None`` if there is no such object."""
        blob = self._bucket.get_blob(name)
        return None if blob is None else self._described(blob, created=False)

    def write_once(self, name: str, data: bytes, *, content_type: str) -> StoredObject:
        """Store ``data`` unless ``name`` exists (single request, ``if_generation_match=0``)."""
        blob = self._bucket.blob(name)
        try:
            blob.upload_from_string(data, content_type=content_type, if_generation_match=0)
        except gexc.PreconditionFailed:
            return StoredObject(name, self.uri(name), None, None, None, None, None, created=False)
        return self._described(blob, created=True)

    def stream_once(
        self,
        name: str,
        chunks: Iterable[bytes],
        *,
        content_type: str,
        signature_check: Callable[[bytes], bool] | None = None,
    ) -> StoredObject:
        """Stream ``chunks`` into ``name`` unless it exists, then check what was stored.

        Holds at most about two chunks bytes. An exception from ``chunks`` cancels the upload
        (nothing is stored) and propagates unchanged.
        """
        existing = self.existing(name)
        if existing is not None:
            return existing
        blob = self._bucket.blob(name)
        writer = BlobWriter(
            blob,
            chunk_size=self._chunk_size,
            content_type=content_type,
            if_generation_match=0,
        )
        digests = _Digests()
        try:
            for chunk in chunks:
                if not chunk:
                    continue
                digests.update(chunk)
                if (
                    signature_check is not None
                    and digests.size >= SIGNATURE_BYTES
                    and digests.size - len(chunk) < SIGNATURE_BYTES
                    and not signature_check(digests.head)
                ):
                    raise ContentRejected("the content does not start with the expected signature")
                writer.write(chunk)
            if signature_check is not None and digests.size < SIGNATURE_BYTES:
                if not signature_check(digests.head):
                    raise ContentRejected("the content does not start with the expected signature")
            writer.close()
        except BaseException as error:
            with contextlib.suppress(Exception):
                writer.terminate()
            if _precondition_failed(error):
                stored = self.existing(name)
                if stored is not None:
                    return stored
            raise
        return self._verified(blob, digests, content_type, signature_check)

    def _verified(
        self,
        blob: storage.Blob,
        digests: _Digests,
        content_type: str,
        signature_check: Callable[[bytes], bool] | None,
    ) -> StoredObject:
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
        if signature_check is not None and not problems:
            head = blob.download_as_bytes(
                start=0, end=min(SIGNATURE_BYTES, digests.size) - 1, checksum=None
            )
            if not signature_check(head):
                problems.append("the stored bytes do not start with the expected signature")
        if problems:
            with contextlib.suppress(gexc.NotFound):
                blob.delete(if_generation_match=blob.generation)
            raise StoredObjectMismatch(f"{blob.name}: " + "; ".join(problems) + " (deleted)")
        return self._described(blob, created=True)
