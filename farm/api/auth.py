"""Bearer tokens -> tenants, checked at the edge of every call.

Token file (`reelfarm serve --tokens FILE`): one `<tenant> <token>` per line; blank lines
and `#` comments are ignored. Only sha256 digests of the tokens are kept; a presented
token is compared with every digest by hmac.compare_digest (no early exit, so timing
does not tell which entry, if any, matched). Tokens are never logged or echoed, not even
in error messages about the file.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from farm.api.errors import Unauthenticated

# The tenant of every call when the server runs open (no tokens configured).
OPEN_TENANT = "default"
MIN_TOKEN_CHARS = 16
_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Authenticator:
    # (sha256 of a token, its tenant); empty: open mode, every caller is OPEN_TENANT.
    digests: tuple[tuple[bytes, str], ...] = ()

    @classmethod
    def from_tokens(cls, tokens: Mapping[str, str]) -> Authenticator:
        """token -> tenant."""
        for token, tenant in tokens.items():
            _check_entry(token, tenant, "a token")
        return cls(tuple((_digest(t), tenant) for t, tenant in tokens.items()))

    @classmethod
    def from_file(cls, path: str | Path) -> Authenticator:
        tokens: dict[str, str] = {}
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            where = f"{path} line {n}"
            if len(parts) != 2:
                raise ValueError(f"{where}: expected `<tenant> <token>`")
            tenant, token = parts
            _check_entry(token, tenant, where)
            if token in tokens:
                raise ValueError(f"{where}: this token is already given to another entry")
            tokens[token] = tenant
        if not tokens:
            raise ValueError(f"{path}: no tokens (an empty file would leave the API open)")
        return cls.from_tokens(tokens)

    @property
    def is_open(self) -> bool:
        return not self.digests

    @property
    def tenants(self) -> list[str]:
        return sorted({tenant for _, tenant in self.digests})

    def tenant(self, metadata: Iterable[tuple[str, str | bytes]]) -> str:
        """The caller's tenant from its `authorization: Bearer <token>` metadata."""
        if self.is_open:
            return OPEN_TENANT
        values = [v for k, v in metadata if k.lower() == "authorization"]
        if not values:
            raise Unauthenticated("missing `authorization: Bearer <token>` metadata")
        value = values[0].decode() if isinstance(values[0], bytes) else values[0]
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization metadata must be `Bearer <token>`")
        presented = _digest(token.strip())
        found = None
        for digest, tenant in self.digests:
            if hmac.compare_digest(digest, presented):
                found = tenant
        if found is None:
            raise Unauthenticated("unknown token")
        return found


def _check_entry(token: str, tenant: str, where: str) -> None:
    if not _TENANT.match(tenant):
        raise ValueError(f"{where}: tenant names use letters, digits, '_', '.', '-' (1-64 chars)")
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"{where}: tokens must have at least {MIN_TOKEN_CHARS} characters")
