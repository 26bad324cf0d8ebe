"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A 32-byte HS256 key, readable by its owner only (a key others may read is refused).
    Tests that must know the key's bytes define their own."""
    p = tmp_path / "jwt.key"
    p.write_bytes(b"s" * 32)
    p.chmod(0o600)
    return p
