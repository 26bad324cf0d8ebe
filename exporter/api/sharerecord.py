"""Association records of `/shares` (API v0.0.40+, Slurm 23.11+): one Struct for every
version, as jobrecord.py for jobs. v0.0.40/41 send `effective_usage` and `fairshare`
as plain numbers (FLOAT64) and an infinite `level` as the bare word `Infinity`, which is
not JSON; v0.0.42+ wrap them (FLOAT64_NO_VAL: src/plugins/data_parser/v0.0.42/parsers.c,
ASSOC_SHARES_OBJ_WRAP), and 26.05's (v0.0.42 to v0.0.45) print an infinite one as
(double) INFINITE64, 2^64, with the warning "Dumping (0xffffffffffffffff) as place holder
for Infinity" (src/plugins/data_parser/v0.0.43/parsers.c:2443-2447, slurm-26-05-3-1),
and NO_VAL as (double) NO_VAL, which `number()` takes for unset.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator

import msgspec

from exporter.api.decoding import Num, Wrapped, integer, number
from exporter.api.model import Share

# the bare words json-c prints for non-finite doubles (v0.0.40/41) as a member's value,
# pretty (`"level": Infinity\n`) or with SLURMRESTD_JSON=compact (`"level":Infinity}`,
# src/slurmrestd/slurmrestd.c:230, slurm-24-11-5-1): after a key's closing quote, which
# no string holds unescaped, and before the member's end
_SPECIALS = re.compile(rb'(?<=[^\\]"):(\s*)(-?Infinity|NaN)(?=\s*[,}\]])')
# a chunk's end that may be the start of one of them, held for the next chunk
_OPEN = re.compile(rb":\s*-?[INafinty]*\s*\Z")
# NaN is what v0.0.42+ send as unset (FLOAT64_NO_VAL: NO_VAL or isnan -> set false)
_SPECIAL_VALUES = {"Infinity": math.inf, "-Infinity": -math.inf}
# Slurm's SLURMDB_FS_USE_PARENT (slurmdb.h): shares taken from the parent; sshare "parent"
FS_USE_PARENT = 0x7FFFFFFF
# (double) INFINITE64 = 2^64: how 26.05 prints an infinite double (see above)
_INFINITY_PLACEHOLDER = float(2**64)

Special = str  # "Infinity" once _SPECIALS has quoted it


class _Tres(msgspec.Struct, gc=False):
    name: str = ""
    value: Num = None


class _TresLists(msgspec.Struct, gc=False):
    run_seconds: list[_Tres] = msgspec.field(default_factory=list)


class _Fairshare(msgspec.Struct, gc=False):
    factor: Num | Special = None
    level: Num | Special = None


class RawShare(msgspec.Struct, gc=False):
    name: str = ""
    parent: str = ""
    partition: str | None = None
    shares_normalized: Num = None
    shares: Num = None
    tres: _TresLists | None = None
    effective_usage: Num | Special = None
    usage_normalized: Num = None
    usage: Num = None
    fairshare: _Fairshare | None = None
    type: tuple[str, ...] = ()


def quote_specials(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The answer with `Infinity`/`NaN` values quoted (`"Infinity"`), so that a JSON
    decoder takes them; each chunk as it comes, less an end that may be cut mid-value."""
    tail = b""
    for chunk in chunks:
        data = tail + chunk
        cut = _held_from(data)
        data, tail = data[:cut], data[cut:]
        if data:
            yield _quote(data)
    if tail:
        yield _quote(tail)


def _held_from(data: bytes) -> int:
    """Where to cut `data` so that no value is split: the last two bytes (a member's end
    may follow a value), or two bytes before an open `: Infinity` (the key's closing
    quote and the byte before it, which _SPECIALS looks behind at)."""
    end = max(len(data) - 2, 0)
    colon = data.rfind(b":")
    if colon >= end or (colon >= 0 and _OPEN.match(data, colon, end)):
        end = max(colon - 2, 0)
    return end


def _quote(data: bytes) -> bytes:
    if b"Infinity" not in data and b"NaN" not in data:
        return data
    return _SPECIALS.sub(rb':\1"\2"', data)


def _float(value: Num | Special) -> float | None:
    if isinstance(value, str):
        return _SPECIAL_VALUES.get(value)
    # FLOAT64_NO_VAL: isinf -> {"infinite": true} (data_parser/v0.0.42/parsers.c:2519)
    if isinstance(value, Wrapped) and value.infinite:
        return math.inf
    found = number(value)
    return None if found is None else float(found)


def _level(value: Num | Special) -> float | None:
    """LevelFS: +inf for an association with shares and no usage (sshare prints inf)."""
    raw = value.number if isinstance(value, Wrapped) else value
    if isinstance(raw, float) and raw == _INFINITY_PLACEHOLDER:
        return math.inf
    return _float(value)


def to_share(raw: RawShare) -> Share:
    shares = number(raw.shares)
    fs = raw.fairshare or _Fairshare()
    run = raw.tres.run_seconds if raw.tres else []
    return Share(
        name=raw.name,
        parent=raw.parent,
        partition=raw.partition or "",
        user="USER" in raw.type,
        shares_raw=None if shares is None or shares == FS_USE_PARENT else int(shares),
        shares_norm=_float(raw.shares_normalized),
        usage_raw=integer(raw.usage),
        usage_norm=_float(raw.usage_normalized),
        usage_effective=_float(raw.effective_usage),
        fairshare_factor=_float(fs.factor),
        # sshare prints no LevelFS for Fairshare=parent (src/sshare/process.c:276-280,
        # slurm-24-11-5-1); fair_tree.c:188-191 keeps INFINITY (user) or NO_VAL there
        level_fs=None if shares == FS_USE_PARENT else _level(fs.level),
        tres_run_seconds=tuple((t.name, integer(t.value)) for t in run if t.name),
    )
