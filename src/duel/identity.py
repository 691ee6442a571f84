"""Document identity: which user a document is, whatever the packaging of the dump.

A document's key is the first usable source in the key rule (`DUEL_DOCUMENT_KEY`, a
comma-separated list; default `@file,user_id`):

- `@file`: the file's identity path (`duel.sources.identity_path`: its path inside the dump
  without the dump's own top-level folder). Usable for a file of its own; not for an NDJSON line
  or an element of a JSON array, whose position means nothing.
- any other name: that top-level field of the document. Usable when it is a non-blank string
  or an integer and not one of the field's placeholders nor of every field's (`vars.placeholders`
  in the dbt project, the same lists the staging models use: a user_id "null" or "N/A" is no
  one's). Strings are trimmed and case-folded, so
  ` ABC@x.com` and `abc@x.com` are one key.

A document with no usable key is identified by its content (`content:<sha256>`): it can never be
merged with another user, but an edited copy of it is a new identity (with `--full`, the old one
is deleted). The ingest counts these as `keyless`.

A document that does not parse (quarantined) is keyed by the same rule from the top-level fields
that read as strict JSON before the damage (`salvaged_key`): a broken NDJSON line
`{"user_id": "u3", "na` is `user_id:u3`'s delivery, so it marks that user's version stale and a
complete dump holding it does not delete u3. When the source that decides may lie past the
damage, it is no one's (`content:`), and a complete dump holding it withholds its deletes
(duel.deletes).

Keys are text with their source as a prefix (`file:user_17.json`, `user_id:1ed6…`,
`content:9f2c…`), so two sources never collide; dbt derives `user_key` from it. A key over
MAX_KEY_BYTES (a user_id of 3,000 characters, a path that long) is its source and the sha256 of
its value (`user_id~sha256:…`, a prefix no other key has): the same value is the same key, and
the key fits the database's indexes (a btree entry stops at 2,704 bytes, and one such key
failed the whole batch).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from duel import jsonb
from duel.defects import EVERY_FIELD, placeholders_of, project_vars
from duel.exceptions import ConfigError

if TYPE_CHECKING:
    from duel.settings import Settings

FILE_SOURCE = "@file"
PATH_SOURCE = "file"  # what a key taken from a file's path starts with (path_key)
DEFAULT_DOCUMENT_KEY = "@file,user_id"
CONTENT_PREFIX = "content:"
MAX_KEY_BYTES = 1024  # in UTF-8; a longer key is stored as its digest (bounded_key)
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class KeyRule:
    """The parsed `DUEL_DOCUMENT_KEY`: the key sources in order of preference."""

    sources: tuple[str, ...]
    # per field, its placeholders with every field's (load_placeholders)
    placeholders: dict[str, frozenset[str]] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, text: str, placeholders: dict[str, frozenset[str]] | None = None) -> KeyRule:
        """`@file,user_id` -> KeyRule(("@file", "user_id")); ConfigError (one line) if malformed."""
        sources = tuple(part.strip() for part in text.split(",") if part.strip())
        if not sources:
            raise ConfigError(
                "DUEL_DOCUMENT_KEY is empty: give top-level fields and/or @file, e.g. @file,user_id"
            )
        for source in sources:
            if source != FILE_SOURCE and not FIELD_NAME.match(source):
                raise ConfigError(
                    f"DUEL_DOCUMENT_KEY: {source!r} is neither @file nor a top-level field name"
                )
        if len(set(sources)) != len(sources):
            raise ConfigError(f"DUEL_DOCUMENT_KEY names a source twice: {text!r}")
        return cls(sources, placeholders or {})

    @property
    def text(self) -> str:
        return ",".join(self.sources)

    def placeholders_of(self, source: str) -> frozenset[str]:
        """The values of field `source` that identify no one: its list, which holds every
        field's too (load_placeholders), or every field's for a field without a list. Two
        lookups: this runs once per document keyed by a field."""
        return self.placeholders.get(source) or self.placeholders.get(EVERY_FIELD, frozenset())

    @property
    def needs_fields(self) -> bool:
        """Whether a file of its own may need its fields read (a field comes before @file)."""
        return self.sources[0] != FILE_SOURCE


def bounded_key(source: str, value: str) -> str:
    """`source:value`, or `source~sha256:<hex of value>` when that is over MAX_KEY_BYTES."""
    key = f"{source}:{value}"
    if len(key) * 4 <= MAX_KEY_BYTES or len(_utf8(key)) <= MAX_KEY_BYTES:
        return key
    return f"{source}~sha256:{hashlib.sha256(_utf8(value)).hexdigest()}"


def is_path_key(key: str) -> bool:
    """Whether a document key was taken from a file's path (`path_key`): a file of its own,
    which the ingest can know by its bytes' hash without parsing it (duel.parse)."""
    return key.startswith((f"{PATH_SOURCE}:", f"{PATH_SOURCE}~sha256:"))


def path_key(key_path: str) -> str:
    """The key of a file identified by its identity path, in Unicode's composed form (NFC): a
    name written decomposed (`u` + combining diaeresis, as macOS tools write `ü`) is the same
    file as the same name composed."""
    if not key_path.isascii():
        key_path = unicodedata.normalize("NFC", key_path)
    return bounded_key(PATH_SOURCE, key_path)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a name's undecodable bytes, kept as they were


def file_key(rule: KeyRule, key_path: str | None) -> str | None:
    """The key of a file of its own when the rule takes it from the path before any field (the
    common case, and the default rule): known without parsing the file; else None."""
    if key_path is not None and not rule.needs_fields:
        return path_key(key_path)
    return None


def document_key(rule: KeyRule, key_path: str | None, document: bytes, sha256: str) -> str:
    """The key of one parsed document (`document`: its JSON text, an object)."""
    if (key := file_key(rule, key_path)) is not None:
        return key  # no field read
    fields: dict[str, Any] | None = None

    def field(source: str) -> Any:
        nonlocal fields
        if fields is None:
            value = jsonb.loads(document)
            fields = value if isinstance(value, dict) else {}
        field_value = fields.get(source)
        if isinstance(field_value, float):  # an integer beyond 64 bits, as orjson reads it
            exact = jsonb.exact_loads(document)
            field_value = exact.get(source) if isinstance(exact, dict) else None
        return field_value

    return _first_usable(rule, key_path, field) or CONTENT_PREFIX + sha256


def salvaged_key(rule: KeyRule, key_path: str | None, data: bytes) -> str | None:
    """The key of a document that could not be parsed (quarantined), from what of it can be read:
    the rule's sources in order, as document_key takes them, each field from the top-level
    members that read as JSON before the damage (`readable_members`). A field found but
    unusable passes on to the next source, as it would in the whole document; one not found (it
    may lie past the damage) or written twice stops: None, the document may be anyone
    (`{"user_id": "u3", "na` is `user_id:u3`; `{"name": "A", "user_` is no one)."""
    members: dict[str, Any] | None = None

    def field(source: str) -> Any:
        nonlocal members
        if members is None:
            members = readable_members(data) or {}
        return members.get(source, _UNKNOWN)

    return _first_usable(rule, key_path, field)


_UNKNOWN = object()  # a field whose value cannot be known: which key the rule gives cannot be told


def _first_usable(rule: KeyRule, key_path: str | None, field: Callable[[str], Any]) -> str | None:
    """The key of the rule's first usable source: the file's path where `@file` comes (for a
    file of its own), a field's value (`field(source)`) where usable_value finds one; None when
    no source is usable, or a field's value is _UNKNOWN."""
    for source in rule.sources:
        if source == FILE_SOURCE:
            if key_path is not None:
                return path_key(key_path)
            continue
        value = field(source)
        if value is _UNKNOWN:
            return None
        if (key := usable_value(value, rule.placeholders_of(source))) is not None:
            return bounded_key(source, key)
    return None


# A top-level member of a broken document, read in order up to the damage: its name, the colon,
# its value (each read by the standard library's strict decoder, a container whole), what ends it
_SPACE = re.compile(r"[ \t\r\n]*")
_COLON = re.compile(r"[ \t\r\n]*:[ \t\r\n]*")
_MEMBER_END = re.compile(r"[ \t\r\n]*([,}])")


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_not_json)  # strict: no control character in a string


def readable_members(data: bytes) -> dict[str, Any] | None:
    """The top-level members of a JSON object that read as strict JSON, each value whole, before
    its text breaks off or goes wrong, name -> value (a container as read: usable_value finds no
    key in it; a name written twice as unknown); reading stops at the first member that does
    not. None when the text does not open an object (after a UTF-8 byte order mark and
    whitespace: an array, another encoding, a comment first), or when something follows the
    object's end (two documents on one line). Values are read by the standard library, so an
    integer keeps every digit, as document_key reads it; a skipped object or array must be JSON
    too, or a wrong bracket, a comment or a quote would bring its inner members to the top. Not
    seen: a name written again past the damage (a parser keeps the last), so a broken
    `{"user_id": "u3", "name": "A" "user_id": "u4"}` is u3's."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:  # the damage: the first byte that is not UTF-8
        text = data[: error.start].decode("utf-8")
    text = text.removeprefix("\ufeff")
    position = _past_space(text, 0)
    if text[position : position + 1] != "{":
        return None
    members: dict[str, Any] = {}
    position += 1
    while True:
        position = _past_space(text, position)
        if text[position : position + 1] != '"':
            break
        try:
            name, position = _DECODER.raw_decode(text, position)
            if (colon := _COLON.match(text, position)) is None:
                break
            value, position = _DECODER.raw_decode(text, colon.end())
        except (ValueError, RecursionError):  # not JSON, or too deep to read
            break
        if (member_end := _MEMBER_END.match(text, position)) is None:
            break  # the value may go on past the damage (`"u3` cut, `12` of `123`)
        if isinstance(value, str) and not _storable(value):
            break  # a NUL or a lone surrogate: no text column holds it (the document was refused)
        # a name written twice: which value a parser keeps may be past the damage
        members[name] = _UNKNOWN if name in members else value
        if member_end.group(1) == "}":
            if text[member_end.end() :].strip(" \t\r\n"):
                return None  # more after the object (two users on one line): it may be anyone
            break
        position = member_end.end()
    return members


def _past_space(text: str, position: int) -> int:
    """The position past the JSON whitespace at `position`."""
    space = _SPACE.match(text, position)
    return space.end() if space is not None else position


def _storable(text: str) -> bool:
    """Whether Postgres' text holds `text`: no NUL, every code point encodable in UTF-8."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def usable_value(value: Any, placeholders: frozenset[str] = frozenset()) -> str | None:
    """The key text of a field's value, or None when it cannot identify anyone."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        return None
    text = value.strip().casefold()
    if not text or text in placeholders:
        return None
    return text


def load_placeholders(dbt_project_dir: Path) -> dict[str, frozenset[str]]:
    """The placeholder values per field, each with every field's (and `every_field`'s own
    entry, for a field without a list): `vars.placeholders` of the dbt project, the one list
    that the staging models and the identity rule both read (duel.defects reads it)."""
    values = project_vars(dbt_project_dir).get("placeholders") or {}
    return {
        name: frozenset(str(v).strip().casefold() for v in placeholders_of(values, name))
        for name in values
    }


def key_rule(settings: Settings) -> KeyRule:
    """The key rule the settings ask for, with the project's placeholders."""
    return KeyRule.parse(settings.document_key, load_placeholders(settings.dbt_project_dir))
