"""Bearer tokens -> tenants: file format, open mode, rejections that never echo a token."""

from __future__ import annotations

import pytest

from farm.api.auth import OPEN_TENANT, Authenticator
from farm.api.errors import Unauthenticated

TOKEN_A = "a-secret-token-0123456789"
TOKEN_B = "b-secret-token-0123456789"


def bearer(token: str) -> list[tuple[str, str]]:
    return [("user-agent", "test"), ("authorization", f"Bearer {token}")]


def test_tokens_map_to_tenants(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# tenant token\nalice {TOKEN_A}\n\nbob {TOKEN_B}  # studio B\n")
    auth = Authenticator.from_file(path)
    assert auth.tenants == ["alice", "bob"] and not auth.is_open
    assert auth.tenant(bearer(TOKEN_A)) == "alice"
    assert auth.tenant(bearer(TOKEN_B)) == "bob"
    assert auth.tenant([("authorization", f"bearer  {TOKEN_A} ")]) == "alice"
    assert all(TOKEN_A not in repr(d) for d in auth.digests)  # only digests are kept


@pytest.mark.parametrize("metadata, reason", [
    ([], "missing"),
    ([("authorization", TOKEN_A)], "Bearer"),
    ([("authorization", "Basic abc")], "Bearer"),
    (bearer(TOKEN_A + "x"), "unknown token"),
])
def test_rejections_say_why_without_echoing_the_token(metadata, reason):
    auth = Authenticator.from_tokens({TOKEN_A: "alice"})
    with pytest.raises(Unauthenticated, match=reason) as exc:
        auth.tenant(metadata)
    assert TOKEN_A not in str(exc.value)


def test_open_mode_is_one_tenant():
    assert Authenticator().is_open
    assert Authenticator().tenant([]) == OPEN_TENANT
    assert Authenticator().tenant(bearer(TOKEN_A)) == OPEN_TENANT


@pytest.mark.parametrize("text, message", [
    ("", "no tokens"),
    ("alice\n", "expected"),
    ("alice short\n", "at least 16"),
    (f"al ice {TOKEN_A}\n", "expected"),
    (f"al/ice {TOKEN_A}\n", "tenant names"),
    (f"alice {TOKEN_A}\nbob {TOKEN_A}\n", "already given"),
])
def test_bad_token_files_are_refused_without_echoing_tokens(tmp_path, text, message):
    path = tmp_path / "tokens"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as exc:
        Authenticator.from_file(path)
    assert TOKEN_A not in str(exc.value)
