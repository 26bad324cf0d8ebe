"""Token sources: where the JWT sent to slurmrestd comes from, and when it is renewed.

Every source is thread-safe and hands out a `Credentials` whose token never
shows in a repr, a log line or an exception. Renewable sources (minted from
the key, `scontrol token`) renew at 2/3 of the lifespan and never hand out an
expired token; on an auth failure the client calls `renew()` once and retries, and
only the first of several calls refused with the same token renews it.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import jwt

from exporter.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Renew when this fraction of the lifespan is gone: leaves a third of it to
# absorb a slow or failing renewal before the token actually expires.
RENEW_AT = 2 / 3
# A static token this close to expiry gets a warning at each cycle.
WARN_BEFORE_SECONDS = 3600.0
# HS256 wants a key of at least 32 bytes (RFC 7518 section 3.2), and Slurm's JWT guide
# makes one of 32 (doc/html/jwt.shtml: dd ... bs=32 count=1); Slurm itself loads a key
# of any length (src/plugins/auth/jwt/auth_jwt.c, _init_hs256). start_up_check()
# says so once, in our words, rather than PyJWT's InsecureKeyLengthWarning with its
# source path at every mint (hence hs256_token, not jwt.encode).
MIN_KEY_BYTES = 32


class AuthError(Exception):
    """No usable token; the message says why and what to do (never the token)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    token: str = field(repr=False)
    user: str | None  # X-SLURM-USER-NAME; None: let slurmrestd take `sun` from the token
    expires_at: float | None  # unix time; None: unknown or no token

    def headers(self) -> dict[str, str]:
        h = {"X-SLURM-USER-TOKEN": self.token} if self.token else {}
        if self.user:
            h["X-SLURM-USER-NAME"] = self.user
        return h


NO_CREDENTIALS = Credentials(token="", user=None, expires_at=None)


class TokenSource(Protocol):
    description: str  # for logs and `check`, e.g. "minted from /etc/slurm/jwt.key"

    def credentials(self) -> Credentials:
        """A token that is valid now (renewed first if due). Raises AuthError."""
        ...

    def renew(self, refused: Credentials | None = None) -> bool:
        """Force a new token after slurmrestd refused `refused`; False if this source can't.

        Single flight: when `refused` is no longer the current token (another thread met
        the same refusal and renewed it), nothing is renewed again and the answer is True.
        """
        ...

    def renewals(self) -> dict[str, int]:
        """Renewals so far by result ("success", "failure")."""
        ...


def token_claims(token: str) -> dict[str, object]:
    """The claims of a JWT, read without verifying (we don't have, or need, the key)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise AuthError(
            f"the token is not a valid JWT ({type(e).__name__}): expected three base64url "
            "parts separated by dots, as 'scontrol token' prints"
        ) from None
    return dict(claims)


def hs256_token(claims: dict[str, object], key: bytes) -> str:
    """A JWT signed with HS256 (RFC 7519), as jwt.encode makes it, without its warnings."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def text(obj: object) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    signed = f"{part(text({'alg': 'HS256', 'typ': 'JWT'}))}.{part(text(claims))}"
    return f"{signed}.{part(hmac.digest(key, signed.encode(), 'sha256'))}"


def _exp_of(token: str) -> float | None:
    exp = token_claims(token).get("exp")
    return float(exp) if isinstance(exp, int | float) else None


class _Renewable:
    """Shared renewal bookkeeping: a token, its expiry, a lock and counters."""

    description = ""

    def __init__(self, lifespan: float, clock: Clock) -> None:
        self._lifespan = lifespan
        self._clock = clock
        self._lock = threading.Lock()
        self._current: Credentials | None = None
        self._issued_at = 0.0
        self._counts = {"success": 0, "failure": 0}

    def _fetch(self) -> Credentials:
        raise NotImplementedError

    def _due(self, now: float) -> bool:
        cur = self._current
        if cur is None:
            return True
        if cur.expires_at is not None and now >= cur.expires_at:
            return True
        return now >= self._issued_at + self._lifespan * RENEW_AT

    def _renew_locked(self) -> Credentials:
        try:
            creds = self._fetch()
        except AuthError:
            self._counts["failure"] += 1
            raise
        self._counts["success"] += 1
        self._current = creds
        self._issued_at = self._clock()
        return creds

    def credentials(self) -> Credentials:
        with self._lock:
            now = self._clock()
            if not self._due(now):
                assert self._current is not None
                return self._current
            try:
                return self._renew_locked()
            except AuthError:
                cur = self._current
                # A failed renewal may still leave a token that has not expired yet.
                if cur is not None and cur.expires_at is not None and now < cur.expires_at:
                    log.warning("token renewal failed; using the current token until it expires")
                    return cur
                raise

    def renew(self, refused: Credentials | None = None) -> bool:
        with self._lock:
            if refused is not None and self._current is not refused:
                return self._current is not None  # renewed meanwhile: retry with that one
            try:
                self._renew_locked()
            except AuthError as e:
                log.error("token renewal failed: %s", e)
                return False
            return True

    def renewals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def check_key_permissions(path: Path, allow_insecure: bool) -> None:
    """Refuse (AuthError) a key file that other users may read or write, unless allowed.

    Whoever reads the cluster's JWT key can mint a token for any Slurm user, root
    included. A file that cannot be stat'ed is left to the read to report.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if not mode & 0o007:
        return
    problem = (
        f"the JWT key {path} is open to every user on this host (mode "
        f"{stat.filemode(mode)}): whoever reads it can act as any Slurm user, root included"
    )
    if allow_insecure:
        log.warning("%s; used anyway (--jwt-key-file-allow-insecure-permissions)", problem)
        return
    raise AuthError(
        f"{problem}. Fix: chmod o-rwx {path} (0600, or 0640 with the exporter's group), or "
        "pass the key with systemd's LoadCredential=; --jwt-key-file-allow-insecure-permissions "
        "uses it anyway"
    )


class MintedToken(_Renewable):
    """HS256 tokens signed with the cluster's JWT key, as Slurm's auth/jwt expects.

    The key file is read at every renewal, so a rotated key is picked up; a key that
    every user may read is refused (see check_key_permissions) unless allowed.
    """

    def __init__(
        self,
        key_file: Path,
        user: str,
        lifespan: int,
        clock: Clock = time.time,
        allow_insecure_permissions: bool = False,
    ) -> None:
        super().__init__(lifespan, clock)
        self._key_file = key_file
        self._user = user
        self._allow_insecure = allow_insecure_permissions
        # refused here, at start; when allowed, said here once and not at each renewal
        check_key_permissions(key_file, allow_insecure_permissions)
        self._warned_insecure = allow_insecure_permissions
        self.key_length: int | None = None  # of the key read last
        self.description = f"minted for user {user!r} with the key {key_file}"

    def _fetch(self) -> Credentials:
        if not self._warned_insecure:  # warn once when allowed; refuse every time if not
            check_key_permissions(self._key_file, self._allow_insecure)
            self._warned_insecure = self._allow_insecure
        try:
            key = self._key_file.read_bytes()
        except OSError as e:
            raise AuthError(
                f"cannot read the JWT key {self._key_file}: {e.strerror}; check the path "
                "(Slurm's AuthAltParameters=jwt_key=...) and that this user may read it"
            ) from None
        self.key_length = len(key)
        if not key:
            raise AuthError(
                f"the JWT key {self._key_file} is empty: it must hold the cluster's key, "
                "the file named by AuthAltParameters=jwt_key= in slurm.conf"
            )
        now = int(self._clock())
        exp = now + int(self._lifespan)
        token = hs256_token({"iat": now, "exp": exp, "sun": self._user}, key)
        return Credentials(token=token, user=self._user, expires_at=float(exp))


_SCONTROL_TOKEN_RE = re.compile(r"SLURM_JWT=(\S+)")


class ScontrolToken(_Renewable):
    """Tokens from `scontrol token lifespan=N` (needs a working Slurm client config)."""

    def __init__(
        self, scontrol: str, lifespan: int, user: str | None, clock: Clock = time.time
    ) -> None:
        super().__init__(lifespan, clock)
        self._cmd = [scontrol, "token", f"lifespan={lifespan}"]
        if user:
            self._cmd.append(f"username={user}")
        self._user = user
        self.command = scontrol
        self.description = "from 'scontrol token'"

    def _fetch(self) -> Credentials:
        try:
            out = subprocess.run(
                self._cmd, capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise AuthError(f"cannot run {self._cmd[0]!r}: {e}; check --scontrol-path") from None
        m = _SCONTROL_TOKEN_RE.search(out.stdout)
        if out.returncode != 0 or not m:
            err = out.stderr.strip().splitlines()[-1:] or ["no SLURM_JWT= in its output"]
            raise AuthError(
                f"'scontrol token' failed (exit {out.returncode}): {err[0]}; "
                "is AuthAltTypes=auth/jwt set in slurm.conf and is slurmctld up?"
            )
        token = m.group(1)
        sun = token_claims(token).get("sun")
        user = self._user or (sun if isinstance(sun, str) else None)
        return Credentials(token=token, user=user, expires_at=_exp_of(token))


class StaticToken:
    """A token given once ($SLURM_JWT): cannot be renewed, so warn well before it expires."""

    def __init__(self, token: str, user: str | None, clock: Clock = time.time) -> None:
        token = token.strip()
        if not token:
            raise AuthError("SLURM_JWT is empty")
        try:
            claims = token_claims(token)
        except AuthError as e:
            raise AuthError(
                f"$SLURM_JWT: {e}. Fix: set it from 'scontrol token' (export $(scontrol "
                "token lifespan=86400)), or let the exporter mint and renew tokens with "
                "--jwt-key-file KEY --jwt-user USER"
            ) from None
        sun = claims.get("sun")
        self._creds = Credentials(
            token=token,
            user=user or (sun if isinstance(sun, str) else None),
            expires_at=_exp_of(token),
        )
        self._clock = clock
        self._notice = _ExpiryNotice()
        self.description = "static token from $SLURM_JWT"

    def credentials(self) -> Credentials:
        self._notice(self._creds.expires_at, self._clock(), self.description)
        return self._creds

    def renew(self, refused: Credentials | None = None) -> bool:
        return False

    def renewals(self) -> dict[str, int]:
        return {"success": 0, "failure": 0}


class TokenFile:
    """A token kept in a file by some other process; re-read whenever the file changes."""

    def __init__(self, path: Path, user: str | None, clock: Clock = time.time) -> None:
        self._path = path
        self._user = user
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[float, int, int] | None = None
        self._creds: Credentials | None = None
        self._counts = {"success": 0, "failure": 0}
        self._notice = _ExpiryNotice()
        self.description = f"token file {path}"

    def _load_locked(self, force: bool) -> Credentials:
        try:
            st = self._path.stat()
            stamp = (st.st_mtime, st.st_size, st.st_ino)
            if force or stamp != self._stamp or self._creds is None:
                token = self._path.read_text(encoding="utf-8").strip()
                token = token.removeprefix("SLURM_JWT=")
                claims = token_claims(token)
                sun = claims.get("sun")
                self._creds = Credentials(
                    token=token,
                    user=self._user or (sun if isinstance(sun, str) else None),
                    expires_at=_exp_of(token),
                )
                self._stamp = stamp
                self._counts["success"] += 1
        except OSError as e:
            self._counts["failure"] += 1
            raise AuthError(f"cannot read the token file {self._path}: {e.strerror}") from None
        except AuthError as e:
            self._counts["failure"] += 1
            raise AuthError(f"token file {self._path}: {e}") from None
        return self._creds

    def credentials(self) -> Credentials:
        with self._lock:
            creds = self._load_locked(force=False)
        self._notice(creds.expires_at, self._clock(), self.description)
        return creds

    def renew(self, refused: Credentials | None = None) -> bool:
        with self._lock:
            before = self._creds
            if refused is not None and before is not None and before.token != refused.token:
                return True  # re-read meanwhile with another token: retry with that one
            try:
                after = self._load_locked(force=True)
            except AuthError as e:
                log.error("%s", e)
                return False
            return before is None or after.token != before.token

    def renewals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class NoToken:
    """No JWT at all: slurmrestd on a UNIX socket authenticates the peer itself."""

    description = "no token (local authentication over the UNIX socket)"

    def credentials(self) -> Credentials:
        return NO_CREDENTIALS

    def renew(self, refused: Credentials | None = None) -> bool:
        return False

    def renewals(self) -> dict[str, int]:
        return {"success": 0, "failure": 0}


class _ExpiryNotice:
    """Says that a token that cannot be renewed expires soon, or has expired, once per
    token and state: not at every request (five per cycle)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._said: tuple[float | None, str] | None = None

    def __call__(self, expires_at: float | None, now: float, what: str) -> None:
        state = ""
        if expires_at is not None and expires_at - now < WARN_BEFORE_SECONDS:
            state = "expired" if now >= expires_at else "soon"
        with self._lock:
            if self._said == (expires_at, state):
                return
            self._said = (expires_at, state)
        _warn_if_expiring(expires_at, now, what)


def _warn_if_expiring(expires_at: float | None, now: float, what: str) -> None:
    if expires_at is None:
        return
    left = expires_at - now
    if left <= 0:
        log.error(
            "the %s expired %.0f s ago; slurmrestd will refuse it: get a new one "
            "('scontrol token lifespan=N') or use --jwt-key-file to renew automatically",
            what,
            -left,
        )
    elif left < WARN_BEFORE_SECONDS:
        log.warning("the %s expires in %.0f s and cannot be renewed by the exporter", what, left)


def auth_mode(settings: Settings) -> str:
    """The way of authenticating that the settings ask for, --auth auto resolved; raise
    AuthError when auto finds none."""
    if settings.auth != "auto":
        return settings.auth
    if settings.jwt_key_file is not None:
        return "jwt-key"
    if settings.token_file is not None:
        return "token-file"
    if os.environ.get("SLURM_JWT"):
        return "token"
    raise AuthError(
        "no credentials for slurmrestd: pass --jwt-key-file KEY --jwt-user USER "
        "(tokens renewed automatically), --token-file FILE, set SLURM_JWT, or use "
        "--auth scontrol / --auth none (UNIX socket)"
    )


def token_source_from_settings(settings: Settings, clock: Clock = time.time) -> TokenSource:
    """Pick the token source the settings ask for; raise AuthError when none is usable."""
    mode = auth_mode(settings)
    env_token = os.environ.get("SLURM_JWT")
    if mode == "jwt-key":
        assert settings.jwt_key_file is not None and settings.jwt_user
        allow = settings.jwt_key_file_allow_insecure_permissions
        return MintedToken(
            settings.jwt_key_file, settings.jwt_user, settings.jwt_lifespan, clock, allow
        )
    if mode == "token-file":
        assert settings.token_file is not None
        return TokenFile(settings.token_file, settings.user_name, clock)
    if mode == "token":
        if not env_token:
            raise AuthError("--auth token needs the SLURM_JWT environment variable")
        return StaticToken(env_token, settings.user_name, clock)
    if mode == "scontrol":
        return ScontrolToken(
            settings.scontrol_path, settings.jwt_lifespan, settings.jwt_user, clock
        )
    return NoToken()


def start_up_check(tokens: TokenSource, where: Mapping[str, str] | None = None) -> list[str]:
    """Check at start what only the configuration can fix; raise AuthError if unusable.

    A key or token file is read now (so that a missing, empty or garbage one stops
    the exporter, like any bad setting); what may come right by itself (slurmctld
    down for 'scontrol token') is left to the cycles. Returns warnings to log once.
    `where`: where each setting was given (a variable, FILE:LINE), named in the error.
    """
    if isinstance(tokens, ScontrolToken):
        if shutil.which(tokens.command) is None:
            raise AuthError(
                f"--scontrol-path: cannot find the program {tokens.command!r} (not on PATH, "
                "or not executable); give its full path, or another --auth"
            )
        return []
    try:
        tokens.credentials()
    except AuthError as e:
        key = {MintedToken: "jwt_key_file", TokenFile: "token_file"}.get(type(tokens))
        if key is None:
            raise AuthError(str(e)) from None
        setting = (where or {}).get(key) or "--" + key.replace("_", "-")
        raise AuthError(f"{setting}: {e}") from None
    length = tokens.key_length if isinstance(tokens, MintedToken) else None
    if length is not None and length < MIN_KEY_BYTES:
        return [
            f"the JWT key is only {length} bytes: an HS256 key should be at least "
            f"{MIN_KEY_BYTES} bytes (RFC 7518; Slurm's JWT guide makes one with 'dd "
            "if=/dev/random of=jwt_hs256.key bs=32 count=1'); rotate it in Slurm "
            "(AuthAltParameters=jwt_key=) and here"
        ]
    return []
