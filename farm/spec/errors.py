"""Validation errors that name the field, the problem and the allowed values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field of a user's input."""

    # Path of the field, e.g. "scenes[1].frames"; "" for the document itself.
    path: str
    # What is wrong and what would be valid, in words a user can act on.
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(ValueError):
    """A film specification was rejected; `errors` lists every problem found."""

    def __init__(self, errors: list[FieldError] | tuple[FieldError, ...]):
        self.errors = tuple(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"invalid storyboard ({len(self.errors)} error(s)):\n{lines}")


def format_path(parts: tuple[object, ...] | list[object]) -> str:
    """("scenes", 1, "frames") -> "scenes[1].frames"."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
