"""Page tokens of the List RPCs (AIP-158): opaque to clients, bound to what they list.

    page_token("films/abc", 100) -> "ZmlsbXMvYWJjQDEwMA=="   (base64 of "films/abc@100")

A token is only valid for the collection it was made for (a film's executions, a tenant's
media), so a token of one list never silently pages another.
"""

from __future__ import annotations

import base64

from farm.api.errors import InvalidArgument
from farm.spec.errors import FieldError


def page_token(collection: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{collection}@{offset}".encode()).decode()


def page_offset(token: str, collection: str, rpc: str) -> int:
    """Where the page of `token` starts (0 for no token); InvalidArgument for a token that
    `rpc` did not return for this collection."""
    if not token:
        return 0
    try:
        where, _, offset = base64.urlsafe_b64decode(token.encode()).decode().rpartition("@")
        if where == collection and offset.isdigit():
            return int(offset)
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidArgument([FieldError("page_token", f"not a token returned by a previous "
                                                    f"{rpc} call for this list")])
