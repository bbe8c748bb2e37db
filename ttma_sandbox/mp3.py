"""Deterministic, streamed MP3 bytes for simulated call recordings.

A recording of ``size`` bytes is an ID3v2.4 tag (padded so the total comes out exact) followed
by whole MPEG-1 Layer III frames: 128 kbit/s, 48 kHz, mono, no CRC, so every frame is exactly
``144 * 128000 / 48000 = 384`` bytes and needs no padding bit. Each frame's side information is
zero (``part2_3_length = 0``: silence); the main-data area carries a frame counter and filler
derived from the call id, so the checksum depends on the call and on the order of the frames.
Filler bytes stay below ``0x80`` so they never look like a frame sync.

Nothing here builds the whole recording in memory: ``recording_chunks`` is a generator of
chunks of at most ``CHUNK_BYTES``, and ``recording_digest`` hashes the same stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

BITRATE_BPS = 128_000
SAMPLE_RATE_HZ = 48_000
FRAME_BYTES = 144 * BITRATE_BPS // SAMPLE_RATE_HZ  # 384
SAMPLES_PER_FRAME = 1152
# 0xFFFB: sync (11 bits), MPEG-1, Layer III, no CRC. 0x94: bitrate index 9 (128 kbit/s),
# sample-rate index 1 (48 kHz), no padding. 0xC4: mono, original.
FRAME_HEADER = bytes([0xFF, 0xFB, 0x94, 0xC4])
SIDE_INFO_BYTES = 17  # MPEG-1 mono
MAIN_DATA_BYTES = FRAME_BYTES - len(FRAME_HEADER) - SIDE_INFO_BYTES
CHUNK_BYTES = 64 * 1024
FRAMES_PER_CHUNK = CHUNK_BYTES // FRAME_BYTES
MIN_RECORDING_BYTES = 1024
BYTES_PER_SECOND = BITRATE_BPS // 8


@dataclass(frozen=True)
class RecordingDigest:
    """Size and SHA-256 (hex) of a simulated recording."""

    size: int
    sha256: str


def _syncsafe(value: int) -> bytes:
    return bytes((value >> shift) & 0x7F for shift in (21, 14, 7, 0))


def _id3_frame(frame_id: bytes, payload: bytes) -> bytes:
    return frame_id + _syncsafe(len(payload)) + b"\x00\x00" + payload


def _id3_frames(call_id: str) -> bytes:
    call_digest = hashlib.sha256(call_id.encode()).hexdigest()[:16]
    title = _id3_frame(b"TIT2", b"\x03TTMA sandbox recording")
    marker = _id3_frame(b"TXXX", b"\x03sandboxRecording\x00" + call_digest.encode())
    return title + marker


def _layout(call_id: str, size: int) -> tuple[bytes, int]:
    """Return (complete ID3 tag including padding, number of audio frames)."""
    if size < MIN_RECORDING_BYTES:
        raise ValueError(f"a recording needs at least {MIN_RECORDING_BYTES} bytes")
    frames = _id3_frames(call_id)
    minimum_tag = 10 + len(frames)
    frame_count = (size - minimum_tag) // FRAME_BYTES
    tag_size = size - frame_count * FRAME_BYTES
    padding = tag_size - minimum_tag
    header = b"ID3\x04\x00\x00" + _syncsafe(tag_size - 10)
    return header + frames + b"\x00" * padding, frame_count


def _filler(call_id: str) -> bytes:
    seed = hashlib.sha256(b"ttma-sandbox-mp3:" + call_id.encode()).digest()
    stream = b"".join(
        hashlib.sha256(seed + counter.to_bytes(2, "big")).digest()
        for counter in range(MAIN_DATA_BYTES // 32 + 1)
    )
    return bytes(byte & 0x7F for byte in stream[: MAIN_DATA_BYTES - 4])


def _counter(index: int) -> bytes:
    # Four 7-bit groups: never 0xFF, so never a false frame sync.
    return bytes((index >> shift) & 0x7F for shift in (21, 14, 7, 0))


def recording_chunks(call_id: str, size: int, *, limit: int | None = None) -> Iterator[bytes]:
    """Yield the recording of ``call_id`` (``size`` bytes) in chunks of at most CHUNK_BYTES.

    ``limit`` stops the stream early after that many bytes (used to simulate a connection that
    drops mid-download).
    """
    tag, frame_count = _layout(call_id, size)
    prefix = FRAME_HEADER + b"\x00" * SIDE_INFO_BYTES
    filler = _filler(call_id)
    remaining = size if limit is None else min(size, max(0, limit))

    def emit(chunk: bytes) -> bytes:
        nonlocal remaining
        chunk = chunk[:remaining]
        remaining -= len(chunk)
        return chunk

    if remaining <= 0:
        return
    yield emit(tag)
    index = 0
    while index < frame_count and remaining > 0:
        stop = min(frame_count, index + FRAMES_PER_CHUNK)
        chunk = b"".join(prefix + _counter(i) + filler for i in range(index, stop))
        index = stop
        yield emit(chunk)


def recording_digest(call_id: str, size: int) -> RecordingDigest:
    """Size and SHA-256 of the recording ``recording_chunks(call_id, size)`` streams."""
    digest = hashlib.sha256()
    total = 0
    for chunk in recording_chunks(call_id, size):
        digest.update(chunk)
        total += len(chunk)
    return RecordingDigest(size=total, sha256=digest.hexdigest())


def duration_seconds_for(size: int) -> float:
    """Playing time of a recording of ``size`` bytes (frames only; the tag is negligible)."""
    return size / BYTES_PER_SECOND
