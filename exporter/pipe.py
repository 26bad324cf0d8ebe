"""The pipe between the server process and its collection process (server mode).

The server process writes one frame on the child's stdin (the settings, and how many
times a collection process was started again) and keeps stdin open: its closing (the
server process is gone) stops the child. The child writes one frame per snapshot on its
stdout. Frames are a 4-byte big-endian length and a payload that decoding cannot turn
into code: the start as JSON (the settings validated by Settings again), a snapshot as
msgpack of fixed types. A frame longer than MAX_FRAME, cut short, or not of those types
is a FrameError: the reader drops the child, never trusts the rest.
"""

from __future__ import annotations

import struct
from typing import IO

import msgspec

from exporter.cycle import Snapshot
from exporter.errors import EndpointFailure, Reason
from exporter.settings import Settings

_HEAD = struct.Struct("!I")
# Far above any real page (10k nodes with --nodes-per-node: ~10 MB, gzipped besides),
# far below what a garbled length could ask the server process to allocate (4 GiB).
MAX_FRAME = 512 << 20


class FrameError(Exception):
    """A frame that is not what the other side writes: garbled, oversize or cut short."""


class _SnapshotFrame(msgspec.Struct, array_like=True, frozen=True):
    exposition: bytes
    gzipped: bytes
    created_at: float
    all_up: bool
    failures: list[tuple[str, Reason, str, int | None]]


_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(_SnapshotFrame)


def write_frame(out: IO[bytes], payload: bytes) -> None:
    if len(payload) > MAX_FRAME:
        raise FrameError(f"a frame of {len(payload)} bytes is over the limit ({MAX_FRAME})")
    out.write(_HEAD.pack(len(payload)))
    out.write(payload)
    out.flush()


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's payload; None at the end of the stream (the writer is gone)."""
    head = stream.read(_HEAD.size)
    if not head:
        return None
    if len(head) < _HEAD.size:
        raise FrameError("the stream ends inside a frame's length")
    (size,) = _HEAD.unpack(head)
    if size > MAX_FRAME:
        raise FrameError(f"a frame announces {size} bytes, over the limit ({MAX_FRAME})")
    data = stream.read(size)
    if len(data) < size:
        raise FrameError(f"a frame of {size} bytes ends after {len(data)}")
    return data


def encode_snapshot(snap: Snapshot, gzipped: bytes) -> bytes:
    failures = [(e, f.reason, f.message, f.status) for e, f in snap.failures]
    frame = _SnapshotFrame(snap.exposition, gzipped, snap.created_at, snap.all_up, failures)
    return _snapshot_encoder.encode(frame)


def decode_snapshot(payload: bytes) -> Snapshot:
    try:
        frame = _snapshot_decoder.decode(payload)
    except msgspec.DecodeError as e:  # ValidationError too
        raise FrameError(f"not a snapshot: {e}") from None
    return Snapshot(
        exposition=frame.exposition,
        created_at=frame.created_at,
        all_up=frame.all_up,
        failures=tuple(
            (e, EndpointFailure(reason, message, status))
            for e, reason, message, status in frame.failures
        ),
        gzipped=frame.gzipped,
    )


class _StartFrame(msgspec.Struct, frozen=True):
    settings: msgspec.Raw  # Settings as JSON
    restarts: dict[str, int]  # collection processes started again so far, by reason


_start_decoder = msgspec.json.Decoder(_StartFrame)


def encode_start(settings: Settings, restarts: dict[str, int]) -> bytes:
    raw = msgspec.Raw(settings.model_dump_json().encode())
    return msgspec.json.encode(_StartFrame(raw, restarts))


def decode_start(payload: bytes) -> tuple[Settings, dict[str, int]]:
    """The settings as the server process validated them (not read again from the
    environment or the config file), and its count of restarts."""
    try:
        frame = _start_decoder.decode(payload)
        return Settings.model_validate_json(bytes(frame.settings)), frame.restarts
    except (msgspec.DecodeError, ValueError) as e:  # ValueError: pydantic's
        raise FrameError(f"not a start frame: {e}") from None
