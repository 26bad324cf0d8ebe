"""Shared decoding machinery for the per-generation adapters.

Every slurmrestd answer is an envelope: `meta`, `errors`, `warnings` and one
data key (`jobs`, `nodes`, ...). Adapters declare msgspec Structs that subclass
`Envelope` and name only the fields they use; msgspec skips everything else
while it parses, so a 900 MB `/jobs` never becomes a dict tree.
"""

from __future__ import annotations

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


def decode(decoder: msgspec.json.Decoder[E], body: bytes, what: str) -> E:
    """Decode `body`; raise SlurmError if it reports errors, DecodeError if malformed.

    `what` names the request in messages, e.g. "v0.0.45 /jobs".
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
        raise SlurmError(entries_from_raw(envelope.errors))
    return envelope
