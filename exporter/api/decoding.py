"""Shared decoding machinery for the per-generation adapters.

Every slurmrestd answer is an envelope: `meta`, `errors`, `warnings` and one
data key (`jobs`, `nodes`, ...). Adapters declare msgspec Structs that subclass
`Envelope` and name only the fields they use; msgspec skips everything else
while it parses, so a 900 MB `/jobs` never becomes a dict tree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

import msgspec

from exporter.api.errors import (
    DecodeError,
    SlurmError,
    describe_body,
    entries_from_raw,
    parse_errors,
)


class Wrapped(msgspec.Struct, frozen=True, gc=False):
    """v0.0.40+ number: `{"set": bool, "infinite": bool, "number": n}` (hashable: raw
    fields key the adapters' per-answer memos)."""

    set: bool = False
    infinite: bool = False
    number: int | float = 0


# A numeric field as slurmrestd may send it: wrapped (v0.0.40+), plain, or null.
# Declaring all three keeps us tolerant when a field changes shape between
# versions (as diag's average_time did in v0.0.41).
Num = Wrapped | int | float | None

# Slurm's "no value" / "unlimited" sentinels as they leak into plain numbers
# (NO_VAL, INFINITE and their 64-bit forms).
_SENTINELS = frozenset({0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFE, 0xFFFFFFFFFFFFFFFF})
# Slurm's numbers are 64-bit; JSON's are not. Anything beyond (a corrupt answer)
# counts as unset: sums, products and float() of it would overflow further down.
_LIMIT = 2**64


def number(value: Num) -> int | float | None:
    """The value of a numeric field, or None when unset, unlimited or a sentinel."""
    if value is None:
        return None
    if isinstance(value, Wrapped):
        if value.infinite or not value.set:
            return None
        value = value.number
    if value in _SENTINELS or not -_LIMIT < value < _LIMIT:
        return None
    return value


def integer(value: Num, default: int = 0) -> int:
    """`number()` as an int, with a default for unset values."""
    found = number(value)
    return default if found is None else int(found)


def optional_int(value: Num) -> int | None:
    found = number(value)
    return None if found is None else int(found)


class RawWarning(msgspec.Struct, gc=False):
    description: str | None = None
    source: str | None = None


class Envelope(msgspec.Struct, kw_only=True):
    """What every answer carries besides its data.

    `errors` entries are kept raw and decoded one by one afterwards, so an odd
    entry cannot turn a Slurm error into a DecodeError.
    """

    errors: list[msgspec.Raw] | None = None
    warnings: list[RawWarning] | None = None

    def warning_texts(self) -> tuple[str, ...]:
        return tuple(w.description for w in self.warnings or () if w.description)


E = TypeVar("E", bound=Envelope)


def decode(
    decoder: msgspec.json.Decoder[E], body: bytes, what: str,
    not_errors: frozenset[int] = frozenset(),
) -> E:
    """Decode `body`; raise SlurmError if it reports errors, DecodeError if malformed.

    `what` names the request in messages, e.g. "v0.0.45 /jobs"; `not_errors`: error
    numbers that, alone, mean no failure (22.05's "Nothing found" for an empty list).
    """
    # isspace() stops at the first non-blank byte; strip() could copy 900 MB.
    if not body or body.isspace():
        raise DecodeError(f"{what}: empty body")
    try:
        envelope = decoder.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        # An error answer need not fill the data part the way a good one
        # does (22.05 sends a half-empty `statistics`), so look for Slurm's
        # own explanation before blaming the shape.
        entries = parse_errors(body)
        if entries:
            raise SlurmError(entries) from None
        detail = str(exc)
        if not isinstance(exc, msgspec.ValidationError):
            detail += f" ({describe_body(body)})"
        raise DecodeError(f"{what}: {detail}") from None
    if envelope.errors:
        entries = entries_from_raw(envelope.errors)
        if any(e.error_number not in not_errors for e in entries):
            raise SlurmError(entries)
    return envelope


# --- streaming: a large array decoded while it arrives --------------------------------

T = TypeVar("T")

# slurmrestd prints its answers with json-c's JSON_C_TO_STRING_SPACED|PRETTY (an indent
# of 2; src/plugins/serializer/json/serializer_json.c: slurm-22-05-9-1 l. 247,
# slurm-24-11-7-1 l. 248, slurm-26-05-3-1 l. 280), and no string can hold a raw newline.
# Within the array of `jobs` or `nodes`, its elements are the only objects that open and
# close on lines indented by exactly 4 spaces, and the first "]" on a line indented by 2
# is the array's end. Past that end, other top-level arrays (`warnings`, `errors`) are
# printed the same way, so gaps are looked for only before it.
# An array one level deeper (/shares: `{"shares": {"shares": [...]}}`) is the same,
# indented 2 more (`indent`).
def _element_gap(indent: int) -> bytes:  # between two elements
    pad = b" " * (indent + 2)
    return b"\n" + pad + b"},\n" + pad + b"{"


def _array_end(indent: int) -> bytes:
    return b"\n" + b" " * indent + b"]"


# How much of an answer may come before its array before we stop looking and decode
# it whole (a compact or otherwise unexpected layout).
_HEAD_LIMIT = 4 << 20
# Decode once this much has come in: per call, msgspec has a fixed cost that 64 KB
# network reads would pay 15,000 times for 1 GB; a batch of 256 KB decodes in ~0.3 ms.
_BATCH = 256 << 10
_INDEX = re.compile(r"`\$\[(\d+)\]")


def decode_array_stream(
    chunks: Iterable[bytes],
    key: str,
    items: msgspec.json.Decoder[list[T]],
    whole: msgspec.json.Decoder[E],
    take: Callable[[E], list[T]],
    on_items: Callable[[list[T]], None],
    what: str,
    indent: int = 2,
) -> E:
    """Decode an answer `{..., "<key>": [...], ...}` whose array is huge, as it arrives.

    Complete elements are decoded a batch at a time (each network chunk) with `items`
    and handed to `on_items`, so the answer is never whole in memory and no batch holds
    the GIL for long. The rest of the answer (meta, errors, warnings: before or after
    the array depending on the version) is decoded at the end with `whole`, with the
    array emptied, and returned; it raises SlurmError/DecodeError as `decode` does. An
    answer not laid out as slurmrestd prints it is decoded whole, with the same result.
    `indent`: the spaces before the array's key (2 for a member of the answer itself).
    """
    start_mark = b"\n" + b" " * indent + b'"' + key.encode() + b'": ['
    element_gap, array_end = _element_gap(indent), _array_end(indent)
    close_len = indent + 4  # len("\n" + indent + 2 spaces + "}")
    buf = bytearray()
    head: bytes | None = None  # the answer up to the array's "[" once found
    streaming = True
    done = 0  # elements decoded so far
    closed = False  # the array's "]" is in buf: what follows it is not elements
    for chunk in chunks:
        buf += chunk
        if head is None:
            if not streaming:
                continue
            found = buf.find(start_mark)
            if found < 0:
                streaming = len(buf) <= _HEAD_LIMIT
                continue
            cut = found + len(start_mark)
            head = bytes(buf[:cut])
            del buf[:cut]
        if closed or len(buf) < _BATCH:
            continue
        # Look for gaps only before the array's end: the members after it (warnings,
        # errors) are printed the same way and have the same gaps between their objects.
        close = _array_close(buf, array_end)
        closed = close >= 0
        gap = buf.rfind(element_gap, 0, close if closed else len(buf))
        if gap > 0:
            end = gap + close_len  # the "," after the batch's last element
            done += _decode_batch(buf, end, items, on_items, what, key, done)
            del buf[: end + 1]  # buf starts again with the "\n" before an element
    if head is None:
        envelope = decode(whole, bytes(buf), what)
        on_items(take(envelope))
        return envelope
    close = _array_close(buf, array_end)
    if close < 0:
        raise DecodeError(
            f"{what}: JSON is malformed: input data was truncated, the `{key}` array "
            f"does not end ({done} elements read)"
        )
    last = close - len(array_end) + 1  # the "\n" before the array's "  ]"
    if last > 0:  # elements are left
        _decode_batch(buf, last, items, on_items, what, key, done)
    return decode(whole, head + b"]" + bytes(buf[close + 1 :]), what)


def _array_close(buf: bytearray, array_end: bytes) -> int:
    """Where the array's "]" is in `buf` (which starts inside the array, at an element's
    boundary), or -1 when it has not come in yet."""
    if buf[:1] == b"]":  # an empty array: "[]"
        return 0
    end = buf.find(array_end)  # the first one: the array's own, not a later member's
    return -1 if end < 0 else end + len(array_end) - 1


def _decode_batch(
    buf: bytearray,
    end: int,
    items: msgspec.json.Decoder[list[T]],
    on_items: Callable[[list[T]], None],
    what: str,
    key: str,
    done: int,
) -> int:
    """Decode the elements in buf[1:end] as one JSON array, in place: buf[0] (the
    newline before the first element) becomes "[" and buf[end] "]"."""
    if buf[0] != 0x0A:
        raise DecodeError(f"{what}: JSON is malformed: unexpected layout in `{key}`")
    buf[0], buf[end] = 0x5B, 0x5D
    with memoryview(buf) as view, view[: end + 1] as batch:
        try:
            decoded = items.decode(batch)
        except msgspec.DecodeError as exc:
            # name the element as a whole decode would: `$.jobs[1234]`, not `$[3]`
            detail = _INDEX.sub(lambda m: f"`$.{key}[{done + int(m.group(1))}]", str(exc))
            raise DecodeError(f"{what}: {detail}") from None
    on_items(decoded)
    return len(decoded)
