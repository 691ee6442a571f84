"""Demo data shaped like the real dump, every defect class, deterministic, and never taken for real:
its files are `demo/demo_user_<i>.json`, names a real dump (`mixed/user_<i>.json`) does not use.

Its identity is in the file names, not only the folder (the dump's top-level folder carries no
identity: `duel.sources.identity_path`), so demo files never become versions of real files even in
the same database. `is_demo` tells demo data by its first data file's name, and `duel run` /
`duel ingest` put it in its own database (`duel_demo`) unless PGDATABASE is set.

What the real dump (`../shared/data/duel-original-10k.tar.gz`, 10,000 users) looks like, and so
what this writes (under the demo names): a directory entry, then one pretty-printed (4-space
indent) JSON file per user, keys in the dump's order. About half the users (4,967) are clean:
every field valid, platform TikTok or Instagram. The other half are "dirty": each field is broken
independently with the probability counted in the dump (`BROKEN_GIVEN_DIRTY`), so defects cluster
in the same files as they do there; their platform is TikTok, Instagram, Facebook or the integer
123 with equal odds; and 4.4 % of them (2.2 % of all files) end after the closing `]` of
`advocacy_programs` and its newline, without the final `}`. Overall rates, as in the dump:

    user_id null 45 %        name "???" 48 %            email "invalid-email" 43 %
    instagram_handle null 48 %  tiktok_handle "#error_handle" 48 %  joined_at "not-a-date" 47 %
    program_id "" 45 %       brand 12345 45 %           total_sales_attributed "no-data" 40 %
    task_id null 45 %        platform 123 13 %          post_url "broken_link" 41 %
    likes "NaN" 40 %         comments null 36 %         reach -1000 2.7 %     malformed 2.2 %

Valid values follow the dump's shapes: Faker-style names and mixed-case emails, handles of
letters, digits, `.`, `_` and sometimes `-`, `2024-05-02T23:33:17.161Z` timestamps within the
year before 2025-03-19, company-name brands, `https://<adjective>-<noun>.<tld>/` links.

Every user has one program with one task, as in the dump; `varied_rate` gives that share of users
0-3 programs of 0-3 tasks each instead (default 0). The same seed gives the same bytes: one
`random.Random(seed)` drawn only through `random()` and `getrandbits()` (stable across Python
versions), fixed tar metadata, gzip mtime 0 and no file name in the gzip header. The tar stream
is byte-for-byte what `tarfile` writes (GNU format), with headers built from a template because
`TarInfo.tobuf` dominates the time at a million members; compression runs on a second thread.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import random
import re
import tarfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from duel.exceptions import DuelError
from duel.sources import TAR_SUFFIXES

FILE_SUFFIXES = (".gz", ".zip", ".json", ".ndjson", ".jsonl", ".bz2", ".xz", ".zst")
FOLDER = "demo"
FILE_PREFIX = "demo_user_"  # demo/demo_user_<i>.json: no real dump's file is named so
DEMO_NAME = re.compile(r"demo_user_\d+\.json")

# Counted in the real dump: how many of its 5,033 dirty users (of 10,000) have each defect.
REAL_USERS, REAL_DIRTY, REAL_MALFORMED = 10_000, 5_033, 222
BROKEN_GIVEN_DIRTY = {
    field: count / REAL_DIRTY
    for field, count in {
        "user_id": 4535,
        "name": 4773,
        "email": 4280,
        "instagram_handle": 4795,
        "tiktok_handle": 4788,
        "joined_at": 4667,
        "program_id": 4501,
        "brand": 4534,
        "total_sales_attributed": 3985,
        "task_id": 4524,
        "post_url": 4057,
        "likes": 4032,
        "comments": 3576,
        "reach": 271,
    }.items()
}
DIRTY_RATE = REAL_DIRTY / REAL_USERS
MALFORMED_RATE = REAL_MALFORMED / REAL_USERS

MTIME = 1753285082  # every member's mtime, as in the real dump: 2025-07-23T15:38:02Z
AS_OF_MS = 1742378400000  # 2025-03-19T10:00:00Z: joined_at falls within the year before
YEAR_MS = 365 * 24 * 3600 * 1000
FLUSH_BYTES = 1 << 22  # tar bytes handed to the compressing thread at a time
PROGRESS_EVERY = 10_000

# The 128 most frequent words of each kind in the real dump's (Faker-made) names and links.
# fmt: off
FIRST_NAMES = (
    "Abraham", "Ada", "Alan", "Alvin", "Angel", "Angelica", "Arlene", "Barry", "Bennie", "Bertha",
    "Beth", "Billy", "Bradley", "Bryant", "Cameron", "Carla", "Carrie", "Cathy", "Chelsea",
    "Claire", "Claudia", "Clifford", "Clint", "Cody", "Connie", "Cornelius", "Courtney", "Daisy",
    "Dallas", "Dana", "Danny", "Darrin", "David", "Della", "Dewey", "Dolores", "Domingo", "Doreen",
    "Doris", "Earl", "Edgar", "Eileen", "Emilio", "Emma", "Emmett", "Enrique", "Eva", "Faye",
    "Fernando", "Francisco", "Genevieve", "George", "Georgia", "Geraldine", "Gerard", "Gilbert",
    "Glenda", "Glenn", "Gregg", "Gregory", "Harriet", "Heather", "Heidi", "Hugh", "Ira", "Irene",
    "Jackie", "Jaime", "Jake", "Jamie", "Janet", "Jared", "Jay", "Jean", "Jeremy", "Jessie", "Jody",
    "Joe", "Joel", "Johnnie", "Josefina", "Kara", "Kelly", "Kerry", "Kim", "Kristine", "Kurt",
    "Lauren", "Lee", "Leroy", "Leslie", "Lowell", "Lucas", "Lynn", "Mable", "Mack", "Michele",
    "Mona", "Nathaniel", "Nicholas", "Nicole", "Nina", "Ora", "Otis", "Peggy", "Randall", "Robin",
    "Rochelle", "Saul", "Shannon", "Shari", "Sheila", "Sheryl", "Sonja", "Stephanie", "Suzanne",
    "Sylvester", "Terence", "Teri", "Terry", "Theodore", "Tina", "Toby", "Tomas", "Tracy", "Verna",
    "Warren", "Wilma",
)
LAST_NAMES = (
    "Auer", "Bailey", "Bartell", "Bashirian", "Batz", "Baumbach", "Bayer", "Beatty", "Bednar",
    "Beier", "Bergstrom", "Blanda", "Bogisich", "Bosco", "Bradtke", "Bruen", "Buckridge",
    "Cartwright", "Casper", "Champlin", "Cole", "Corkery", "Cormier", "Corwin", "Cronin", "Crooks",
    "Cruickshank", "D'Amore", "Daniel", "Daugherty", "Denesik", "Dibbert", "Dickinson", "DuBuque",
    "Effertz", "Emmerich", "Fahey", "Feil", "Franey", "Friesen", "Gibson", "Gleason", "Gleichner",
    "Goldner", "Grady", "Greenfelder", "Greenholt", "Gusikowski", "Hauck", "Heathcote", "Hermiston",
    "Hettinger", "Hills", "Hilpert", "Hintz", "Hodkiewicz", "Howe", "Jacobson", "Jast", "Jenkins",
    "Kemmer", "Kertzmann", "King", "Klein", "Koepp", "Kohler", "Koss", "Kris", "Kulas", "Kutch",
    "Kuvalis", "Lakin", "Langosh", "Larkin", "Lebsack", "Ledner", "Lockman", "Lowe", "Lueilwitz",
    "Macejkovic", "Marks", "McCullough", "Moen", "Mohr", "Morar", "Muller", "Nader", "Nienow",
    "O'Connell", "O'Hara", "Orn", "Parker", "Paucek", "Powlowski", "Predovic", "Quigley", "Ratke",
    "Raynor", "Renner", "Rogahn", "Rowe", "Sanford", "Schaefer", "Schamberger", "Schmidt", "Schoen",
    "Schulist", "Schultz", "Schumm", "Smith", "Smitham", "Stamm", "Stark", "Strosin", "Terry",
    "Torphy", "Towne", "Tremblay", "Tromp", "Turcotte", "Veum", "Volkman", "Waelchi", "Walker",
    "Walter", "Williamson", "Zboncak", "Ziemann",
)
ADJECTIVES = (
    "actual", "aged", "agile", "another", "antique", "artistic", "aware", "babyish", "baggy",
    "best", "big", "bitter", "bony", "bulky", "celebrated", "clear-cut", "cloudy", "crafty",
    "crowded", "cuddly", "cultivated", "cumbersome", "cute", "damaged", "darling", "decisive",
    "defensive", "definite", "delirious", "dental", "deserted", "devoted", "digital", "dirty",
    "emotional", "enraged", "entire", "esteemed", "every", "exalted", "far", "favorite",
    "firsthand", "free", "gigantic", "glaring", "gloomy", "grave", "grimy", "grouchy", "grubby",
    "gruesome", "gullible", "happy", "hidden", "honorable", "huge", "hurtful", "ideal", "ignorant",
    "imaginative", "impish", "inborn", "inconsequential", "informal", "instructive", "intent",
    "irresponsible", "jam-packed", "junior", "known", "lazy", "lonely", "long-term", "lumpy",
    "magnificent", "mean", "moist", "monstrous", "monumental", "motionless", "multicolored",
    "mundane", "murky", "musty", "narrow", "near", "necessary", "orange", "oval", "overcooked",
    "pale", "physical", "practical", "prudent", "quarrelsome", "quarterly", "quick", "quick-witted",
    "regular", "robust", "self-assured", "severe", "shimmering", "shrill", "sick", "sorrowful",
    "specific", "speedy", "splendid", "squiggly", "steep", "sticky", "stunning", "suburban",
    "sudden", "tepid", "thick", "those", "unripe", "unwieldy", "variable", "wavy", "well-worn",
    "whimsical", "worst", "wrong", "wry",
)
NOUNS = (
    "acquaintance", "advancement", "affiliate", "almighty", "analogy", "approach", "archaeology",
    "backbone", "barracks", "battle", "bid", "birdbath", "birdcage", "bonfire", "bookend",
    "bourgeoisie", "bump", "cap", "caption", "cardboard", "casement", "cassava", "chairperson",
    "chapel", "character", "convection", "corporation", "cricket", "dead", "declaration", "deer",
    "dependency", "descendant", "designation", "developing", "dime", "director", "disconnection",
    "drug", "duster", "dwell", "ectoderm", "essence", "event", "eyebrow", "farmer", "fat", "fibre",
    "fisherman", "fishery", "fit", "flame", "flight", "glider", "gradient", "grouper", "guide",
    "heating", "humor", "hundred", "illusion", "impact", "insolence", "kiss", "lady", "language",
    "lounge", "makeover", "manner", "mantua", "marimba", "masterpiece", "meadow", "median",
    "mixture", "mobility", "molasses", "monocle", "mother", "negotiation", "nephew", "nougat",
    "nudge", "nun", "orchid", "other", "outrun", "ownership", "pacemaker", "paintwork",
    "permafrost", "pigsty", "pine", "platypus", "pop", "printer", "prohibition", "provider",
    "punctuation", "pupil", "puritan", "resolve", "riser", "rosemary", "ruin", "safe", "secrecy",
    "secret", "sediment", "shark", "shirt", "sport", "stool", "summary", "surface", "swing",
    "switchboard", "tectonics", "tennis", "term", "tool", "tooth", "translation", "velocity",
    "viability", "wedding", "willow", "zen",
)
# fmt: on
POOL_BITS = 7  # the four pools above hold 2**7 words each: a pick is one getrandbits(7)
PREFIXES = ("Dr.", "Mr.", "Mrs.", "Miss", "Ms.")
SUFFIXES = ("I", "II", "III", "IV", "V", "Jr.", "Sr.", "MD", "DDS", "PhD", "DVM")
COMPANY_SUFFIXES = ("Inc", "and Sons", "LLC", "Group")
MAIL_DOMAINS = ("gmail.com", "yahoo.com", "hotmail.com")
TLDS = ("com", "net", "org", "info", "biz", "name")
HANDLE_LAST_NAMES = tuple(name.replace("'", "") for name in LAST_NAMES)
CLEAN_PLATFORMS = ('"TikTok"', '"Instagram"')
DIRTY_PLATFORMS = ('"TikTok"', '"Instagram"', '"Facebook"', "123")


@dataclass(frozen=True)
class Written:
    """What `write_dataset` wrote: how many user files, which of them lack their final `}`."""

    path: Path
    files: int
    malformed: int
    malformed_names: tuple[str, ...]
    size: int  # bytes of the archive, or of all files in a directory


class _Users:
    """Draws users from one seeded generator and renders them as the dump's JSON text."""

    def __init__(self, seed: int, malformed_rate: float, varied_rate: float) -> None:
        rng = random.Random(seed)
        self.random, self.bits = rng.random, rng.getrandbits
        self.malformed_dirty = min(1.0, malformed_rate / DIRTY_RATE)
        self.malformed_clean = max(0.0, (malformed_rate - DIRTY_RATE) / (1 - DIRTY_RATE))
        self.varied_rate = varied_rate

    def pick(self, pool: tuple[str, ...]) -> str:
        return pool[int(self.random() * len(pool))]

    def uuid(self) -> str:
        h = f"{self.bits(128):032x}"
        return f'"{h[:8]}-{h[8:12]}-4{h[13:16]}-{"89ab"[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"'

    def person(self) -> str:
        r, bits = self.random, self.bits
        last = LAST_NAMES[bits(POOL_BITS)]
        if r() < 0.045:
            last = f"{last}-{LAST_NAMES[bits(POOL_BITS)]}"
        name = f"{FIRST_NAMES[bits(POOL_BITS)]} {last}"
        if r() < 0.118:
            name = f"{self.pick(PREFIXES)} {name}"
        if r() < 0.134:
            name = f"{name} {self.pick(SUFFIXES)}"
        return f'"{name}"'

    def username(self) -> str:
        r, bits = self.random, self.bits
        first = FIRST_NAMES[bits(POOL_BITS)]
        if r() < 1 / 3:
            return f"{first}{int(r() * 100)}"
        last = HANDLE_LAST_NAMES[bits(POOL_BITS)]
        if r() < 0.055:
            last = f"{last}-{HANDLE_LAST_NAMES[bits(POOL_BITS)]}"
        separator = "." if r() < 0.5 else "_"
        return (
            f"{first}{separator}{last}{int(r() * 100)}"
            if r() < 0.5
            else f"{first}{separator}{last}"
        )

    def joined_at(self) -> str:
        ms = AS_OF_MS - int(self.random() * YEAR_MS)
        t = time.gmtime(ms // 1000)
        return (
            f'"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:'
            f'{t.tm_sec:02d}.{ms % 1000:03d}Z"'
        )

    def brand(self) -> str:
        bits, shape = self.bits, int(self.random() * 3)
        if shape == 0:
            return f'"{LAST_NAMES[bits(POOL_BITS)]} {self.pick(COMPANY_SUFFIXES)}"'
        if shape == 1:
            return f'"{LAST_NAMES[bits(POOL_BITS)]} - {LAST_NAMES[bits(POOL_BITS)]}"'
        return (
            f'"{LAST_NAMES[bits(POOL_BITS)]}, {LAST_NAMES[bits(POOL_BITS)]} and '
            f'{LAST_NAMES[bits(POOL_BITS)]}"'
        )

    def post_url(self) -> str:
        bits = self.bits
        slash = "/" if self.random() < 0.5 else ""
        return f'"https://{ADJECTIVES[bits(POOL_BITS)]}-{NOUNS[bits(POOL_BITS)]}.{self.pick(TLDS)}{slash}"'

    def count(self) -> int:
        """How many programs (or tasks) the next list holds: 1, or 0-3 for a varied user."""
        if self.varied_rate and self.random() < self.varied_rate:
            return int(self.random() * 4)
        return 1

    def task(self, dirty: bool) -> str:
        r, bad = self.random, BROKEN_GIVEN_DIRTY
        task_id = "null" if dirty and r() < bad["task_id"] else self.uuid()
        platform = self.pick(DIRTY_PLATFORMS if dirty else CLEAN_PLATFORMS)
        post_url = '"broken_link"' if dirty and r() < bad["post_url"] else self.post_url()
        likes = '"NaN"' if dirty and r() < bad["likes"] else 10 + int(r() * 491)
        comments = "null" if dirty and r() < bad["comments"] else int(r() * 51)
        shares = int(r() * 101)
        reach = -1000 if dirty and r() < bad["reach"] else 500 + int(r() * 9501)
        pad = " " * 20
        return (
            f'                {{\n{pad}"task_id": {task_id},\n{pad}"platform": {platform},\n'
            f'{pad}"post_url": {post_url},\n{pad}"likes": {likes},\n{pad}"comments": {comments},\n'
            f'{pad}"shares": {shares},\n{pad}"reach": {reach}\n                }}'
        )

    def program(self, dirty: bool) -> str:
        r, bad = self.random, BROKEN_GIVEN_DIRTY
        program_id = '""' if dirty and r() < bad["program_id"] else self.uuid()
        brand = "12345" if dirty and r() < bad["brand"] else self.brand()
        tasks = _json_list([self.task(dirty) for _ in range(self.count())], 12)
        sales = (
            '"no-data"' if dirty and r() < bad["total_sales_attributed"] else repr(100 + r() * 4900)
        )
        pad = " " * 12
        return (
            f'        {{\n{pad}"program_id": {program_id},\n{pad}"brand": {brand},\n'
            f'{pad}"tasks_completed": {tasks},\n{pad}"total_sales_attributed": {sales}\n        }}'
        )

    def user(self) -> tuple[bytes, bool]:
        """One user file's bytes, and whether it is malformed (its final `}` left off)."""
        r = self.random
        dirty = r() < DIRTY_RATE
        bad = BROKEN_GIVEN_DIRTY
        user_id = "null" if dirty and r() < bad["user_id"] else self.uuid()
        name = '"???"' if dirty and r() < bad["name"] else self.person()
        email = (
            '"invalid-email"'
            if dirty and r() < bad["email"]
            else f'"{self.username()}@{self.pick(MAIL_DOMAINS)}"'
        )
        instagram = "null" if dirty and r() < bad["instagram_handle"] else f'"@{self.username()}"'
        tiktok = (
            '"#error_handle"' if dirty and r() < bad["tiktok_handle"] else f'"@{self.username()}"'
        )
        joined_at = '"not-a-date"' if dirty and r() < bad["joined_at"] else self.joined_at()
        programs = _json_list([self.program(dirty) for _ in range(self.count())], 4)
        text = (
            f'{{\n    "user_id": {user_id},\n    "name": {name},\n    "email": {email},\n'
            f'    "instagram_handle": {instagram},\n    "tiktok_handle": {tiktok},\n'
            f'    "joined_at": {joined_at},\n    "advocacy_programs": {programs}\n}}'
        )
        malformed = r() < (self.malformed_dirty if dirty else self.malformed_clean)
        return (text[:-1] if malformed else text).encode(), malformed


def _json_list(items: list[str], indent: int) -> str:
    """A list of already-indented items as json.dumps(indent=4) writes it (`[]` when empty)."""
    if not items:
        return "[]"
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def _template(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


class _ChunkedWriter:
    """Gathers bytes into large chunks that a second thread writes (zlib and file writes release
    the GIL), at most two chunks behind: the archive is compressed while the next users are
    drawn. Counts what it was given (`offset`)."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self.sink, self.pending, self.offset = write, 0, 0
        self.parts: list[bytes] = []
        self.buffered: deque[Future[object]] = deque()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duel-generate")

    def write(self, *blocks: bytes) -> None:
        for block in blocks:
            self.parts.append(block)
            self.pending += len(block)
            self.offset += len(block)
        if self.pending >= FLUSH_BYTES:
            self._flush()

    def finish(self) -> None:
        """Write what is left and wait until every chunk is written."""
        self._flush()
        try:
            while self.buffered:
                self.buffered.popleft().result()
        finally:
            self.pool.shutdown()

    def abandon(self) -> None:
        self.pool.shutdown(cancel_futures=True)

    def _flush(self) -> None:
        chunk, self.parts, self.pending = b"".join(self.parts), [], 0
        self.buffered.append(self.pool.submit(self.sink, chunk))
        while len(self.buffered) > 2:
            self.buffered.popleft().result()


def _write_tar(chunks: _ChunkedWriter, files: Iterator[tuple[str, bytes, bool]]) -> list[str]:
    """A GNU tar stream, byte for byte what tarfile writes: tarfile makes every header (from one
    template, only name and size change; no TarInfo kept per file), then the data padded to
    whole blocks, and the end-of-archive blocks padded to a whole record. Returns the names of
    the malformed files."""
    malformed: list[str] = []
    chunks.write(_template(f"{FOLDER}/", tarfile.DIRTYPE, 0o775).tobuf(tarfile.GNU_FORMAT))
    member = _template("", tarfile.REGTYPE, 0o664)
    for name, data, broken in files:
        member.name, member.size = name, len(data)
        padding = tarfile.NUL * (-len(data) % tarfile.BLOCKSIZE)
        chunks.write(member.tobuf(tarfile.GNU_FORMAT), data, padding)
        if broken:
            malformed.append(name)
    chunks.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
    chunks.write(tarfile.NUL * (-chunks.offset % tarfile.RECORDSIZE))
    return malformed


def write_dataset(
    output: Path,
    *,
    users: int,
    seed: int,
    malformed_rate: float = MALFORMED_RATE,
    varied_rate: float = 0.0,
    compresslevel: int = 1,
    on_progress: Callable[[int], None] | None = None,
) -> Written:
    """Write `users` user files to `output`: a tar archive (.tar, or compressed as its name says:
    .tar.gz/.tgz, .tar.bz2/.tbz2, .tar.xz/.txz), else a directory.

    An archive is written to a temporary name beside it and renamed when complete, so an
    interrupted run never leaves a truncated archive behind. A directory gets `mixed/` inside
    it, which must not already hold files.
    """
    if not 0 <= malformed_rate <= 1 or not 0 <= varied_rate <= 1:
        raise DuelError("malformed_rate and varied_rate must be between 0 and 1")
    lowered = output.name.lower()
    if (
        not lowered.endswith(TAR_SUFFIXES)
        and not output.is_dir()
        and (output.exists() or lowered.endswith(FILE_SUFFIXES) or output.suffix)
    ):
        what = "is a file" if output.exists() else f"has the extension {output.suffix or lowered}"
        raise DuelError(
            f"{output} {what}: name a .tar, .tar.gz/.tgz, .tar.bz2/.tbz2 or .tar.xz/.txz archive "
            "(e.g. -o data.tar.gz), or a directory"
        )
    files = _iter_files(_Users(seed, malformed_rate, varied_rate), users, on_progress)
    if lowered.endswith(TAR_SUFFIXES):
        malformed = _write_archive(output, files, lowered, compresslevel)
        size = output.stat().st_size
    else:
        malformed, size = _write_directory(output, files)
    return Written(output, users, len(malformed), tuple(malformed), size)


def _iter_files(
    maker: _Users, users: int, on_progress: Callable[[int], None] | None
) -> Iterator[tuple[str, bytes, bool]]:
    """(member name, bytes, is malformed) for each user, reporting progress every 10,000."""
    for index in range(users):
        data, malformed = maker.user()
        yield f"{FOLDER}/{FILE_PREFIX}{index}.json", data, malformed
        if on_progress is not None and (index + 1) % PROGRESS_EVERY == 0:
            on_progress(PROGRESS_EVERY)
    if on_progress is not None and users % PROGRESS_EVERY:
        on_progress(users % PROGRESS_EVERY)


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


def _compressor(lowered: str, raw: BinaryIO, level: int) -> AbstractContextManager[_Sink]:
    """The stream that compresses into `raw` as the archive's name says (.tar: none)."""
    if lowered.endswith(".tar"):
        return nullcontext(raw)
    if lowered.endswith((".tar.bz2", ".tbz2")):
        return bz2.BZ2File(raw, "wb", compresslevel=max(level, 1))
    if lowered.endswith((".tar.xz", ".txz")):
        return lzma.LZMAFile(raw, "wb", preset=level)
    return gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=level, mtime=0)


def _write_archive(
    output: Path, files: Iterator[tuple[str, bytes, bool]], lowered: str, compresslevel: int
) -> list[str]:
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    try:
        with open(partial, "wb") as raw, _compressor(lowered, raw, compresslevel) as sink:
            chunks = _ChunkedWriter(sink.write)
            try:
                malformed = _write_tar(chunks, files)
                chunks.finish()
            except BaseException:
                chunks.abandon()
                raise
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return malformed


def _write_directory(
    output: Path, files: Iterator[tuple[str, bytes, bool]]
) -> tuple[list[str], int]:
    folder = output / FOLDER
    if folder.is_dir() and any(folder.iterdir()):
        raise DuelError(f"{folder} already holds files; name a new or empty directory")
    folder.mkdir(parents=True, exist_ok=True)
    malformed: list[str] = []
    size = 0
    for name, data, broken in files:
        (output / name).write_bytes(data)
        size += len(data)
        if broken:
            malformed.append(name)
    return malformed, size


def is_demo(path: Path) -> bool:
    """Whether `path` holds demo data: its first data file is named `demo_user_<i>.json` (what
    `write_dataset` writes). Reads one archive header or one directory entry; False when unsure."""
    from duel.exceptions import SourceError
    from duel.sources import ARCHIVE_SUFFIXES, iter_source

    try:
        if path.is_dir():
            folder = path / FOLDER if (path / FOLDER).is_dir() else path
            first = next(
                (entry.name for entry in os.scandir(folder) if entry.name.endswith(".json")), None
            )
            return first is not None and DEMO_NAME.fullmatch(first) is not None
        if not path.name.lower().endswith(ARCHIVE_SUFFIXES):
            return False  # demo data is an archive or a directory
        for source in iter_source(path, 0):  # max_bytes 0: names only, nothing read
            if source.skip_reason is None:
                return DEMO_NAME.fullmatch(source.name.rpartition("/")[2]) is not None
    except (OSError, SourceError):  # unreadable: the ingest says why, in one line
        return False
    return False
    return False
