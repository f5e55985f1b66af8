"""Resource names of the API (AIP-122): films/{film}."""

from __future__ import annotations

import re

from farm.api.errors import InvalidArgument
from farm.spec.errors import FieldError

_NAME = re.compile(r"^films/([a-z0-9][a-z0-9_-]{0,63})$")


def film_id(name: str, field: str = "name") -> str:
    """The film id of `films/{film}`; InvalidArgument naming `field` otherwise."""
    m = _NAME.match(name)
    if m is None:
        raise InvalidArgument([FieldError(field, f"{name!r} is not a film name (films/{{film}})")])
    return m.group(1)
