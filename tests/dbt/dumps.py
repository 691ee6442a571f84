"""Tiny dumps shaped like the real ones (`user -> advocacy_programs[] -> tasks_completed[]`),
written as a directory of JSON files, for tests that ingest and build one edge case each.

A value that JSON from Python cannot spell (a number literal such as `1e400`) is given as
`Literal("1e400")` and written into the file as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIGINT_MAX = 2**63 - 1
JOINED_AT = "2024-01-15T10:00:00Z"


@dataclass(frozen=True)
class Literal:
    """A JSON number written exactly as given (e.g. "1e400")."""

    text: str


def user(number: int, programs: Any) -> dict[str, Any]:
    """A user whose every field is clean, with the given `advocacy_programs` value."""
    return {
        "user_id": f"00000000-0000-4000-8000-{number:012d}",
        "name": f"User {number}",
        "email": f"user{number}@example.com",
        "instagram_handle": f"@user{number}",
        "tiktok_handle": f"@user{number}",
        "joined_at": JOINED_AT,
        "advocacy_programs": programs,
    }


def program(number: int, tasks: Any, sales: Any = 100.25, brand: Any = "Acme") -> dict[str, Any]:
    return {
        "program_id": f"00000000-0000-4000-9000-{number:012d}",
        "brand": brand,
        "tasks_completed": tasks,
        "total_sales_attributed": sales,
    }


def task(
    number: int,
    platform: Any = "tiktok",
    likes: Any = 10,
    comments: Any = 2,
    shares: Any = 3,
    reach: Any = 200,
) -> dict[str, Any]:
    return {
        "task_id": f"00000000-0000-4000-a000-{number:012d}",
        "platform": platform,
        "post_url": f"https://example.com/p/{number}",
        "likes": likes,
        "comments": comments,
        "shares": shares,
        "reach": reach,
    }


def document_text(document: Any) -> str:
    literals: dict[str, str] = {}

    def encode(value: Any) -> Any:
        if isinstance(value, Literal):
            token = f"@@literal{len(literals)}@@"
            literals[f'"{token}"'] = value.text
            return token
        raise TypeError(value)

    text = json.dumps(document, indent=2, default=encode)
    for token, literal in literals.items():
        text = text.replace(token, literal)
    return text


def write_dump(directory: Path, files: dict[str, Any]) -> Path:
    """Write each document (or raw text, for a file meant to be broken) under its name."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            content if isinstance(content, str) else document_text(content), encoding="utf-8"
        )
    return directory
