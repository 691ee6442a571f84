"""Normalised text is the same on every database: brand ids under C and under a UTF-8 collation."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import query
from psycopg import sql

from duel import db
from duel.load import ingest
from duel.settings import Settings
from duel.transform import build_models

pytestmark = pytest.mark.slow  # several dbt builds


SPELLINGS = [
    "NESTLÉ GROUP",
    "Nestlé Group",
    "nestlé \t group",
    "NESTLE\u0301 GROUP",
    "Straße AG",
    "STRASSE AG",
    "\u01c4uro",
    "\u01c5uro",
    "ＡＣＭＥ",
    # a soft hyphen, a zero-width space and a word joiner inside: the same brand (they made two)
    "Nest\u00adlé Group",
    "NESTLÉ\u200b GROUP",
    "Ac\u2060me",
]


def fold(text: str) -> str:
    """Python's reading of macros/text.sql's fold_text: the characters invisible inside a word
    dropped, NFKC, whitespace runs as one space, casefold.
    """
    visible = re.sub("[\u00ad\u200b\u2060\ufeff]", "", text.strip())
    return re.sub(r"[ \t\n\r\f\v]+", " ", unicodedata.normalize("NFKC", visible)).casefold()


def brand_id(normalised: str) -> str:
    return str(uuid.UUID(hashlib.md5(normalised.encode()).hexdigest()))


def build_with_collation(
    pg_server: Settings, name: str, collation: str, data: Path, out: Path
) -> Settings:
    settings = pg_server.with_overrides(pg_database=name, out_dir=out)
    with psycopg.connect(**settings.conninfo("postgres"), autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(
            sql.SQL(
                "create database {} template template0 encoding 'UTF8' lc_collate {} lc_ctype {}"
            ).format(sql.Identifier(name), sql.Literal(collation), sql.Literal(collation))
        )
    db.ensure_ready(settings)
    ingest(settings, data)
    build_models(settings, unit_tests=False)
    return settings


def test_brand_ids_are_the_same_under_c_and_utf8_collations(
    pg_server: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "dump"
    data.mkdir()
    task = {
        "task_id": None,
        "platform": "tiktok",
        "post_url": None,
        "likes": 1,
        "comments": 1,
        "shares": 1,
        "reach": 10,
    }
    programs = [
        {"program_id": None, "brand": brand, "tasks_completed": [task], "total_sales_attributed": 1}
        for brand in [*SPELLINGS, "\u00ad\u00ad"]  # soft hyphens alone: no brand (it was one)
    ]
    (data / "user_1.json").write_text(json.dumps({"user_id": None, "advocacy_programs": programs}))
    built = [
        build_with_collation(
            pg_server, f"duel_collation_{label}", collation, data, tmp_path / label
        )
        for label, collation in (("c", "C"), ("utf8", "C.utf8"))
    ]
    assert [
        query(s, "select datcollate from pg_database where datname = current_database()")
        for s in built
    ] == [[("C",)], [("C.utf8",)]]
    expected = sorted(
        (brand_id(fold(b)), fold(b)) for b in {fold(b): b for b in SPELLINGS}.values()
    )
    assert expected == sorted(
        [
            (brand_id("acme"), "acme"),
            (brand_id("džuro"), "džuro"),
            (brand_id("nestlé group"), "nestlé group"),
            (brand_id("strasse ag"), "strasse ag"),
        ]
    )
    for settings in built:
        assert query(
            settings,
            "select brand_id::text, brand_normalised from dbt_lookup.brand"
            " where not is_unknown_brand order by 1",
        ) == sorted(expected)
        assert query(settings, "select count(distinct brand_id) from dbt.advocacy_programs") == [
            (5,)  # the four brands and the unknown brand
        ]
        assert query(
            settings, "select brand, brand_defect from dbt.advocacy_programs where brand is null"
        ) == [(None, "empty")]
