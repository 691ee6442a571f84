"""One set of users delivered in either form: files of their own, or one NDJSON file (the
layout guard's tests, on Postgres and on Spark)."""

from __future__ import annotations

import json
from pathlib import Path


def users(ids: range, prefix: str = "u") -> list[dict[str, object]]:
    """Users `u0`, `u1`, ... (by `ids`), each with a name."""
    return [{"user_id": f"{prefix}{n}", "name": f"User {n}"} for n in ids]


def as_files(path: Path, people: list[dict[str, object]]) -> Path:
    """Each user a file of its own, `mixed/<user_id>.json` (keyed by its path, `<user_id>.json`:
    the dump's top folder is left out; the user_id trimmed)."""
    (path / "mixed").mkdir(parents=True)
    for user in people:
        (path / "mixed" / f"{str(user['user_id']).strip()}.json").write_text(json.dumps(user))
    return path


def as_ndjson(path: Path, people: list[dict[str, object]]) -> Path:
    """All of them in one NDJSON file, `users.ndjson` (each line keyed by its user_id)."""
    path.mkdir(parents=True)
    (path / "users.ndjson").write_text("".join(json.dumps(user) + "\n" for user in people))
    return path


def readable_as_ndjson(folder: Path, target: Path) -> list[dict[str, object]]:
    """The users of the JSON files in `folder` that parse as objects (a malformed file has no
    line), as one NDJSON file `target/users.ndjson`; returns them."""
    people = []
    for path in sorted(folder.glob("*.json")):
        try:
            user = json.loads(path.read_bytes())
        except ValueError:
            continue
        if isinstance(user, dict):
            people.append(user)
    as_ndjson(target, people)
    return people
