"""The layout guard (duel.layout): a dump whose files moved to another folder depth is refused,
in one line, writing nothing; other new documents load as before."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import query, run_cli
from dump_forms import as_files, as_ndjson, readable_as_ndjson, users
from tar_files import make_tar
from test_deletes import raw_counts

from duel.exceptions import IdentityCollision, LayoutChanged
from duel.identity import key_rule
from duel.layout import SAMPLE, NewDocuments
from duel.load import ingest
from duel.pipeline import check_layout, ingest_stage, plan_shards
from duel.settings import Settings


def dump(path: Path, names: range, folder: str = "mixed", name: str = "User {n}") -> Path:
    """Files `folder/user_N.json` under `path` (folder may have several levels, or be '')."""
    target = path / folder if folder else path
    target.mkdir(parents=True, exist_ok=True)
    for n in names:
        (target / f"user_{n}.json").write_text(
            json.dumps({"user_id": None, "name": name.format(n=n)})
        )
    return path


def test_a_dump_one_folder_deeper_is_refused_and_writes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    ingest(settings, dump(tmp_path / "a", range(4)))  # identities user_N.json
    before = raw_counts(settings)
    with pytest.raises(LayoutChanged) as refused:
        ingest(settings, dump(tmp_path / "b", range(4), folder="day2/mixed"))
    assert str(refused.value) == (
        "refused: 4 of the 4 new documents of this dump are current documents under another "
        "folder depth (its 'mixed/user_0.json' is the current 'user_0.json'; a document's "
        "identity is its path without the dump's top folder), so loading it would add those "
        "users a second time; nothing was written. Package it as the earlier dumps were (one "
        "top folder, then user_0.json), or run it again with --allow-new-layout to load them "
        "as new documents"
    )
    assert (refused.value.moved, refused.value.checked, refused.value.new) == (4, 4, 4)
    assert raw_counts(settings) == before


def test_a_dump_one_folder_shallower_is_refused_too(settings: Settings, tmp_path: Path) -> None:
    ingest(settings, dump(tmp_path / "a", range(3), folder="export/eu"))  # eu/user_N.json
    with pytest.raises(
        LayoutChanged,
        match=r"^refused: 3 of the 3 new documents .* \(its "
        r"'user_0.json' is the current 'eu/user_0.json'",
    ):
        ingest(settings, dump(tmp_path / "b", range(3)), full=True)
    assert query(
        settings, "select count(*), count(*) filter (where is_deleted) from raw.current_versions"
    ) == [(3, 0)]


def test_allow_new_layout_loads_them_as_new_documents(settings: Settings, tmp_path: Path) -> None:
    ingest(settings, dump(tmp_path / "a", range(4)))
    result = ingest(
        settings, dump(tmp_path / "b", range(4), folder="day2/mixed"), allow_new_layout=True
    )
    assert (result.loaded, result.unchanged) == (4, 0)
    assert query(settings, "select document_key from raw.current_versions order by 1") == [
        ("file:mixed/user_0.json",),
        ("file:mixed/user_1.json",),
        ("file:mixed/user_2.json",),
        ("file:mixed/user_3.json",),
        ("file:user_0.json",),
        ("file:user_1.json",),
        ("file:user_2.json",),
        ("file:user_3.json",),
    ]


def test_a_renamed_top_folder_and_new_users_load_as_before(
    settings: Settings, tmp_path: Path
) -> None:
    ingest(settings, dump(tmp_path / "a", range(4)))
    # the same users under another top folder, one changed, two new ones
    again = dump(tmp_path / "b", range(1, 4), folder="export-2025-07-25")
    dump(again, range(1), folder="export-2025-07-25", name="Renamed {n}")
    dump(again, range(4, 6), folder="export-2025-07-25")
    result = ingest(settings, again)
    assert (result.loaded, result.unchanged) == (3, 3)


def test_moves_of_documents_the_dump_still_holds_are_not_moves(
    settings: Settings, tmp_path: Path
) -> None:
    """A new regional folder beside the files delivered as before: eu/user_0.json is new, and
    user_0.json (its shorter form) is in the dump too, so nothing moved."""
    ingest(settings, dump(tmp_path / "a", range(3), folder="x"))
    both = dump(tmp_path / "b", range(3), folder="x")
    (both / "x" / "eu").mkdir()
    (both / "x" / "eu" / "user_0.json").write_text('{"user_id": null, "name": "Eu"}')
    result = ingest(settings, both)
    assert (result.loaded, result.unchanged) == (1, 3)


def test_a_few_moves_among_many_new_documents_are_loaded(
    settings: Settings, tmp_path: Path
) -> None:
    """Half or fewer of the new documents moves: new users mostly, loaded (the guard is for a
    repackaged dump, where every new document is a move)."""
    ingest(settings, dump(tmp_path / "a", range(2)))
    mixed = dump(tmp_path / "b", range(2, 4), folder="top")
    dump(mixed, range(2), folder="top/eu")  # eu/user_0.json, eu/user_1.json: moves
    result = ingest(settings, mixed)
    assert (result.loaded, result.unchanged) == (4, 0)


def test_new_documents_sample_keeps_file_keys_with_the_smallest_md5_in_any_order() -> None:
    keys = ["file:a.json", *(f"file:{n}.json" for n in range(SAMPLE + 5))]
    new, backwards = NewDocuments(), NewDocuments()
    new.add(["user_id:1", "content:9f", *keys])
    backwards.add(list(reversed(keys)))
    smallest = sorted(keys, key=lambda k: hashlib.md5(k.encode()).hexdigest())[:SAMPLE]
    assert (new.count, new.sample, backwards.sample) == (SAMPLE + 6, smallest, smallest)


def test_cli_run_refuses_in_one_line_and_allow_new_layout_loads(
    settings: Settings, tmp_path: Path
) -> None:
    assert run_cli(settings, "ingest", str(dump(tmp_path / "a", range(2)))).returncode == 0
    deeper = str(dump(tmp_path / "b", range(2), folder="day2/mixed"))
    refused = run_cli(settings, "ingest", deeper, "--json")
    assert (refused.returncode, refused.stdout, refused.stderr.count("\n")) == (1, "", 1)
    assert refused.stderr.startswith(
        "error: refused: 2 of the 2 new documents of this dump are current documents under "
        "another folder depth"
    )
    allowed = run_cli(settings, "ingest", deeper, "--allow-new-layout", "--json")
    assert (allowed.returncode, json.loads(allowed.stdout)["loaded"]) == (0, 2)


def test_a_large_repackaged_dump_is_judged_on_its_first_new_documents(
    settings: Settings, tmp_path: Path
) -> None:
    ingest(settings, dump(tmp_path / "a", range(SAMPLE + 2)))
    with pytest.raises(LayoutChanged) as refused:
        ingest(settings, dump(tmp_path / "b", range(SAMPLE + 2), folder="day2/mixed"))
    assert str(refused.value).startswith(
        f"refused: {SAMPLE} of a sample of {SAMPLE} of the {SAMPLE + 2} new documents of this "
        "dump are current documents under another folder depth"
    )


def test_a_repackaged_dump_listing_new_users_first_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    """A dump whose new folder sorts before the moved one (`day2/fresh/` then `day2/mixed/`):
    the first new documents in its order are all new users; the sample, spread over the
    batch, sees the moves (it loaded, and the 3,000 users were in the database twice)."""
    ingest(settings, dump(tmp_path / "a", range(3 * SAMPLE)))
    b = dump(tmp_path / "b", range(SAMPLE + 1), folder="day2/fresh", name="New {n}")
    dump(b, range(3 * SAMPLE), folder="day2/mixed")
    before = raw_counts(settings)
    with pytest.raises(LayoutChanged, match=r"^refused: \d+ of a sample of 1000 of the 4001 new"):
        ingest(settings, b)
    assert raw_counts(settings) == before
    with pytest.raises(LayoutChanged, match=r"^refused: \d+ of a sample of 1000 of the 4001 new"):
        check_layout(settings, b)


def test_preflight_refuses_a_deeper_dump_before_the_shards_load(
    settings: Settings, tmp_path: Path
) -> None:
    """The DAG's check (pipeline.check_layout), from the file names alone, gives the batch's
    verdict: refused with the same line, nothing written; allowed, the shards load it."""
    ingest(settings, dump(tmp_path / "a", range(4)))
    before = raw_counts(settings)
    deeper = dump(tmp_path / "b", range(4), folder="day2/mixed")
    with pytest.raises(LayoutChanged) as refused:
        check_layout(settings, deeper)
    with pytest.raises(LayoutChanged) as in_batch:
        ingest(settings, deeper)
    assert (str(refused.value), refused.value.moved) == (str(in_batch.value), 4)
    assert raw_counts(settings) == before
    check_layout(settings, deeper, allow_new_layout=True)
    loaded = [ingest_stage(settings, deeper, shard=label) for label in plan_shards(deeper, 2)]
    assert sum(result.loaded for result in loaded) == 4


def test_preflight_passes_new_users_renamed_folders_and_a_first_load(
    settings: Settings, tmp_path: Path
) -> None:
    check_layout(settings, dump(tmp_path / "a", range(3), folder="day2/mixed"))  # empty database
    ingest(settings, tmp_path / "a")
    grown = dump(tmp_path / "b", range(5), folder="day3/mixed")  # renamed top folder, 2 new
    check_layout(settings, grown)
    assert ingest(settings, grown).loaded == 2


def test_one_shard_of_one_is_the_whole_dump_and_is_checked_in_its_batch(
    settings: Settings, tmp_path: Path
) -> None:
    ingest(settings, dump(tmp_path / "a", range(2)))
    deeper = dump(tmp_path / "b", range(2), folder="day2/mixed")
    with pytest.raises(LayoutChanged):
        ingest_stage(settings, deeper, shard="0/1")
    assert ingest_stage(settings, deeper, shard="0/1", allow_new_layout=True).loaded == 2


def test_a_dump_keyed_by_another_rule_is_refused_in_one_line(
    settings: Settings, tmp_path: Path
) -> None:
    """Users keyed by user_id, then the same dump under the default rule (the flag forgotten):
    each of them came back as `file:...`, a second user (10 rows for 5 people, exit 0)."""
    folder = tmp_path / "d" / "mixed"
    folder.mkdir(parents=True)
    for n in range(5):
        (folder / f"user_{n}.json").write_text(json.dumps({"user_id": f"u{n}"}))
    dump_path = str(tmp_path / "d")
    keyed = run_cli(settings, "ingest", dump_path, "--json", "--document-key", "user_id")
    assert (keyed.returncode, json.loads(keyed.stdout)["loaded"]) == (0, 5)
    before = raw_counts(settings)
    refused = run_cli(settings, "ingest", dump_path, "--json")
    assert (refused.returncode, refused.stdout, refused.stderr) == (
        1,
        "",
        "error: refused: this database's documents are keyed by 'user_id' (batch 1), this run"
        " by '@file,user_id': the documents it identifies otherwise would be loaded a second"
        " time; nothing was written. Give --document-key user_id (or DUEL_DOCUMENT_KEY) as"
        " before, or run it again with --allow-new-layout to key them anew\n",
    )
    assert raw_counts(settings) == before
    same = run_cli(settings, "ingest", dump_path, "--json", "--document-key", "user_id")
    assert (same.returncode, json.loads(same.stdout)["unchanged"]) == (0, 5)
    anew = run_cli(settings, "ingest", dump_path, "--json", "--allow-new-layout")
    assert (anew.returncode, json.loads(anew.stdout)["loaded"]) == (0, 5)


@pytest.mark.parametrize(
    ("members", "first", "second", "path"),
    [
        # a tar of two regional folders: each file's first folder is left out
        (["eu/user_1.json", "us/user_1.json"], "eu/user_1.json", "us/user_1.json", "user_1.json"),
        # packed from inside the export folder: its own file and a subfolder's
        (["user_1.json", "eu/user_1.json"], "eu/user_1.json", "user_1.json", "user_1.json"),
    ],
)
def test_two_files_one_identity_under_different_left_out_folders_are_refused(
    settings: Settings,
    tmp_path: Path,
    members: list[str],
    first: str,
    second: str,
    path: str,
) -> None:
    """Each was `file:user_1.json`, two deliveries of one document: one user replaced the
    other, 'loaded 2', one row in the models."""
    users = [(m, json.dumps({"name": m}).encode()) for m in members]
    before = raw_counts(settings)
    with pytest.raises(IdentityCollision) as refused:
        ingest(settings, make_tar(tmp_path / "two.tar.gz", users))
    assert str(refused.value).startswith(
        f"refused: {first!r} and {second!r} are both the document {path!r} (a file's identity"
    )
    assert raw_counts(settings) == before


def test_a_directory_of_regional_folders_and_inner_archives_are_refused_or_kept_apart(
    settings: Settings, tmp_path: Path
) -> None:
    # a directory holding only eu/ and us/: taken as given above its export folder
    regions = dump(tmp_path / "regions", range(2), folder="eu")
    dump(regions, range(1, 3), folder="us")
    with pytest.raises(
        IdentityCollision, match=re.escape("refused: 'eu/user_1.json' and 'us/user_1.json'")
    ):
        ingest(settings, regions)
    # given from above (one folder holding both), each keeps its region: 4 users
    above = tmp_path / "above"
    above.mkdir()
    regions.rename(above / "export")
    assert ingest(settings, above).loaded == 4
    # two inner archives each holding mixed/user_1.json: a member is keyed by its path in the
    # innermost archive, so they would be one user too
    inner = []
    for day in ("day1", "day2"):
        user = json.dumps({"name": day}).encode()
        inner.append((f"{day}.tar.gz", make_tar(tmp_path / day, [("mixed/user_1.json", user)])))
    inner_bytes = [(name, path.read_bytes()) for name, path in inner]
    with pytest.raises(
        IdentityCollision, match=re.escape("refused: 'day1.tar.gz/mixed/user_1.json' and")
    ):
        ingest(settings, make_tar(tmp_path / "days.tar.gz", inner_bytes))
    # one name written composed and decomposed in one folder is one file, not a collision
    same = [
        ("mixed/j\u00fcrgen.json", b'{"name": "a"}'),
        ("mixed/ju\u0308rgen.json", b'{"name": "b"}'),
    ]
    result = ingest(settings, make_tar(tmp_path / "nfc.tar.gz", same))
    assert (result.loaded, result.files_seen) == (2, 2)


def test_a_dump_of_files_delivered_as_ndjson_is_refused_and_writes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    """The same users as files, then as one NDJSON file: each line was `user_id:uN`, each
    user a second document (the real dump's 9,778 readable users read 19,775). A user_id is
    matched as a key holds it: trimmed and lower-cased (` U0` is `user_id:u0`)."""
    ingest(settings, as_files(tmp_path / "a", users(range(4), prefix=" U")))
    before = raw_counts(settings)
    with pytest.raises(LayoutChanged) as refused:
        ingest(settings, as_ndjson(tmp_path / "b", users(range(4))), full=True)
    assert str(refused.value) == (
        "refused: 4 of the 4 new documents of this dump are users delivered before as files "
        "of their own (its 'user_id:u0' is the current 'U0.json', by its user_id; "
        "a user in a file of its own is identified by the file's path, one in a file of many "
        "users by its user_id), so loading it would add those users a second time; nothing "
        "was written. Deliver it as files of their own, as the earlier dumps were, or run it "
        "again with --allow-new-layout to load them as new documents"
    )
    assert (refused.value.moved, refused.value.checked, refused.value.new) == (4, 4, 4)
    assert raw_counts(settings) == before
    result = ingest(settings, tmp_path / "b", allow_new_layout=True)
    assert (result.loaded, result.unchanged) == (4, 0)
    assert query(settings, "select count(*) from raw.current_versions") == [(8,)]


def test_a_dump_of_ndjson_delivered_as_files_or_an_array_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    ingest(settings, as_ndjson(tmp_path / "a", users(range(3))))
    before = raw_counts(settings)
    with pytest.raises(LayoutChanged) as refused:
        ingest(settings, as_files(tmp_path / "b", users(range(3), prefix="U")))
    assert str(refused.value).startswith(
        "refused: 3 of the 3 new documents of this dump are users delivered before in a file "
        "of many users (its 'U0.json' is the current 'user_id:u0', by its user_id; "
    )
    assert str(refused.value).endswith(
        "Deliver it as one file of many users (NDJSON, or a JSON array), as the earlier dumps "
        "were, or run it again with --allow-new-layout to load them as new documents"
    )
    assert raw_counts(settings) == before
    # as a JSON array, the same users are the same documents, keyed by their user_id: not
    # refused, and each its current version delivered again (an element's bytes are not a
    # line's, their content is the same)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "users.json").write_text(json.dumps(users(range(3))))
    array = ingest(settings, tmp_path / "c")
    assert (array.loaded, array.unchanged, array.unchanged_reasons) == (
        0,
        3,
        {"same-content": 3},
    )
    assert query(settings, "select document_key from raw.current_versions order by 1") == [
        ("user_id:u0",),
        ("user_id:u1",),
        ("user_id:u2",),
    ]


def test_new_users_in_another_form_and_users_the_dump_still_holds_are_loaded(
    settings: Settings, tmp_path: Path
) -> None:
    """Only a user the dump no longer delivers in the form it had is a move: new user_ids in an
    NDJSON file beside the files, and users twice in the dump (their files and lines), load."""
    ingest(settings, as_files(tmp_path / "a", users(range(5))))
    both = as_files(tmp_path / "b", users(range(5)))
    (both / "extra.ndjson").write_text(
        "".join(json.dumps(u) + "\n" for u in users(range(10, 12)) + users(range(3)))
    )
    result = ingest(settings, both)
    assert (result.loaded, result.unchanged) == (5, 5)
    # half or fewer of the new lines are moves (u3 and u4, files absent): new users mostly
    fresh = as_ndjson(tmp_path / "c", users(range(20, 23)) + users(range(3, 5)))
    assert ingest(settings, fresh).loaded == 5


def test_keyed_by_user_id_first_a_dump_keeps_its_users_in_any_form(
    settings: Settings, tmp_path: Path
) -> None:
    """The remedy the refusal's README names: `user_id,@file` keys both forms alike, so the
    guard has nothing to judge and each user stays one document, its current version
    delivered again (a line's bytes are not its file's, their content is the same); a changed
    user is a new version."""
    keyed = replace(settings, document_key="user_id,@file")
    ingest(keyed, as_files(tmp_path / "a", users(range(3))))
    people = users(range(3))
    people[2]["name"] = "Changed"
    result = ingest(keyed, as_ndjson(tmp_path / "b", people), full=True)
    assert (result.loaded, result.unchanged, result.deleted, result.unchanged_reasons) == (
        1,
        2,
        0,
        {"same-content": 2},
    )
    assert query(
        keyed, "select document_key, source_name from raw.current_versions order by 1"
    ) == [
        ("user_id:u0", "mixed/u0.json"),
        ("user_id:u1", "mixed/u1.json"),
        ("user_id:u2", "users.ndjson:3"),
    ]


def test_a_shard_of_a_dump_in_another_form_is_refused_in_its_batch(
    settings: Settings, tmp_path: Path
) -> None:
    ingest(settings, as_files(tmp_path / "a", users(range(2))))
    lines = as_ndjson(tmp_path / "b", users(range(2)))
    with pytest.raises(
        LayoutChanged, match=r"^refused: 2 of the 2 new documents of shard 0/2 of this dump .* as"
    ):
        ingest_stage(settings, lines, shard="0/2")
    assert ingest_stage(settings, lines, shard="0/2", allow_new_layout=True).loaded == 2


def test_the_real_dump_delivered_again_as_one_ndjson_file_is_refused(
    settings: Settings, real_data: Path, real_dir: Path, tmp_path: Path
) -> None:
    """The real dump, then its readable users as one NDJSON file: every user whose user_id
    identifies them was loaded a second time (the overview read 19,775 users of 10,000)."""
    ingest(settings, real_data)
    before = raw_counts(settings)
    placeholders = key_rule(settings).placeholders_of("user_id")
    user_ids = set()
    for user in readable_as_ndjson(real_dir / "mixed", tmp_path / "lines"):
        value = user.get("user_id")
        if isinstance(value, str) and value.strip() and value.strip().lower() not in placeholders:
            user_ids.add(value.strip().lower())
    with pytest.raises(LayoutChanged) as refused:
        ingest(settings, tmp_path / "lines")
    assert (refused.value.moved, refused.value.checked, refused.value.new) == (
        SAMPLE,
        SAMPLE,
        len(user_ids),
    )
    assert raw_counts(settings) == before
