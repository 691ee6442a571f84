-- The raw layer: written by the loader (duel.load), but for raw.model_builds (the transform's). Idempotent DDL, run by every command
-- that needs the database. Documents are immutable versions keyed by (document_key,
-- content_sha256): the key is the document's identity (duel.identity), `source_name` only says
-- where a version was found. Nothing is ever deleted: a document absent from a complete (--full)
-- dump gets a tombstone version (parse_status 'deleted', content_sha256 'deleted', no document).
-- No foreign keys: they cost a trigger call per row on million-row COPYs, and the loader keeps
-- the references whole inside each batch's transaction (tests/test_load.py and the dbt
-- relationship tests check them).

create schema if not exists raw;

create table if not exists raw.batches (
    batch_id bigint generated always as identity primary key,
    source_uri text not null,
    shard text,
    status text not null check (status in ('running', 'succeeded', 'failed')),
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    files_read integer,
    files_seen integer,
    loaded integer,
    repaired integer,
    quarantined integer,
    skipped integer,
    unchanged integer,
    deleted integer,
    keyless integer,
    deletes_withheld integer,
    is_full boolean not null default false,
    document_key_rule text,
    error text,
    duel_version text not null
);
comment on table raw.batches is 'One row per ingest run (batch): when, from where, outcome and counts.';
-- (a database an earlier duel made gets the column; its batches keep NULL: not recorded then)
alter table raw.batches add column if not exists files_read integer;
comment on column raw.batches.files_read is
    'The files (archive members included) the batch read, each once however many documents it held; files_seen counts documents (an NDJSON file or a JSON array of users once per user). NULL when not recorded.';
comment on column raw.batches.files_seen is
    'The documents the batch saw (loaded + quarantined + skipped + unchanged): a file of many users once per user, a file skipped as not data once.';
-- (a database an earlier duel made gets the column; its batches keep NULL: not recorded then)
alter table raw.batches add column if not exists deletes_withheld integer;
comment on column raw.batches.deletes_withheld is
    'A complete dump''s documents absent from it but not deleted, because it held quarantined documents it could not identify (one may be any of them); NULL when not a complete dump or not recorded.';
-- (a database an earlier duel made gets the column; its batches keep NULL: not recorded then)
alter table raw.batches add column if not exists same_content integer;
comment on column raw.batches.same_content is
    'Of the unchanged documents, those delivered in other bytes than their current version''s that hold the same document (whitespace, key order, escapes; ledger reason same-content); NULL when not recorded.';

create table if not exists raw.user_documents (
    document_key text not null,
    content_sha256 text not null,
    source_name text not null,
    batch_id bigint not null,
    loaded_at timestamptz not null default now(),
    parse_status text not null check (parse_status in ('clean', 'repaired', 'deleted')),
    parse_error text,
    repair jsonb,
    byte_size integer not null,
    document jsonb,
    primary key (document_key, content_sha256),
    check ((parse_status = 'deleted') = (document is null))
);
comment on table raw.user_documents is
    'One row per version of a user document (by identity): the parsed JSON as loaded, with lineage and repair record; a tombstone (parse_status deleted) when a complete dump no longer held it.';
-- The versions that needed a rewriting repair (loaded under the lenient policy): few or none.
-- The ingest parses a file again when its current version is one of them (duel.load).
create index if not exists user_documents_rewritten on raw.user_documents
    (document_key, content_sha256) where repair ->> 'kind' = 'rewritten';

create table if not exists raw.current_versions (
    document_key text primary key,
    content_sha256 text not null,
    source_name text not null,
    batch_id bigint not null,
    is_deleted boolean not null default false,
    updated_at timestamptz not null default now()
);
comment on table raw.current_versions is
    'One row per document identity: which version is current (the last one delivered), or its tombstone.';

create table if not exists raw.quarantine (
    source_name text not null,
    document_key text,
    content_sha256 text not null,
    batch_id bigint not null,
    quarantined_at timestamptz not null default now(),
    reason text not null,
    detail text,
    parse_error text,
    byte_size bigint not null,
    content bytea,
    proposed_repair jsonb
);
comment on table raw.quarantine is
    'One row per distinct file that could not be loaded: its bytes intact (unless over the size limit) and why.';
-- One row per (name, bytes), the name indexed by its digest: a btree entry stops at 2,704 bytes,
-- and a file named by a path that long failed the whole batch. The name's bytes are its text's
-- as written: a cast to bytea reads a backslash as an escape, so `user_\1.json` (or an
-- undecodable name, stored as `\xNN`) quarantined failed the whole batch; with each backslash
-- doubled the cast reads every character as itself. (Databases an earlier duel made had this as
-- the primary key on the name itself, then the index quarantine_file on the plain cast: both
-- replaced here, the rows kept, each name's digest still its own.)
drop index if exists raw.quarantine_file;
create unique index if not exists quarantine_source_file on raw.quarantine
    (sha256(cast(replace(source_name, '\', '\\') as bytea)), content_sha256);
alter table raw.quarantine drop constraint if exists quarantine_pkey;

create table if not exists raw.batch_files (
    batch_id bigint not null,
    file_seq integer not null,
    source_name text not null,
    status text not null check (status in ('loaded', 'repaired', 'unchanged', 'quarantined', 'skipped', 'deleted')),
    reason text,
    document_key text,
    content_sha256 text,
    byte_size bigint,
    primary key (batch_id, file_seq)
);
comment on table raw.batch_files is
    'One row per file (or document) seen by a batch, and per document a complete dump deleted: what became of it. The ledger that accounts for every input file.';
-- The quarantined deliveries: few or none among a million rows a delivery. base reads those
-- since its last build on every incremental build (and all of them on a full one); without
-- this index each read scanned the ledger's newest deliveries whole, a cost growing with the
-- dump's size rather than with what changed (bench/analysis.md, twenty-second pass).
create index if not exists batch_files_quarantined on raw.batch_files
    (batch_id, document_key) where status = 'quarantined';

create table if not exists raw.content_aliases (
    document_key text not null,
    alias_sha256 text not null,
    content_sha256 text not null,
    batch_id bigint not null,
    primary key (document_key, alias_sha256)
);
comment on table raw.content_aliases is
    'One row per file bytes found to hold a stored version of their document in other bytes (the same document as the models read it, parsed alike; ledger reason same-content): a later delivery of those bytes while that version is current is known by their hash, as the version''s own bytes are, not parsed again. Written by the batch that found them.';

-- What each document's current-version pointer held before it moved: every state but the current
-- one, with the interval it was current. raw.current_versions says only where a pointer is now,
-- so a document changed twice between two builds (or born and deleted between them) would
-- leave the snapshot (dbt_snapshots.users_snapshot) no trace of its versions in between. The
-- rows are written by a trigger on raw.current_versions, so every statement that moves a
-- pointer records it: a new version, a return, a tombstone, and the restore of a pointer a
-- batch moved and moved back (duel.load._RESTORE_REPEATED), which removes the row that batch
-- wrote, the batch having replaced nothing. A pointer moved twice by one batch is recorded
-- once: its state before the batch, replaced at the batch's time (the pointer's `updated_at`,
-- the batch's transaction time, is each state's start). Batches move a document's pointer in
-- the order of their numbers (the ingest lock; a shard's keys are its own), so a move to a
-- lower batch is that restore.
create table if not exists raw.replaced_versions (
    document_key text not null,
    content_sha256 text not null,
    source_name text not null,
    batch_id bigint not null,
    is_deleted boolean not null,
    valid_from timestamptz not null,
    valid_to timestamptz not null,
    replaced_by_batch_id bigint not null,
    primary key (document_key, replaced_by_batch_id)
);
comment on table raw.replaced_versions is
    'One row per state a document''s current-version pointer held and lost: which version (or tombstone, is_deleted) was current from valid_from until valid_to, which batch made it current (batch_id) and which replaced it. With raw.current_versions, every version each document had and when. Written by a trigger on raw.current_versions.';

create or replace function raw.record_replaced_versions() returns trigger
language plpgsql as $$
begin
    -- a pointer moved back to its state before the batch that had moved it: that batch
    -- replaced nothing
    delete from raw.replaced_versions as replaced
    using moved_from as before
    inner join moved_to as after on after.document_key = before.document_key
    where after.batch_id < before.batch_id
        and replaced.document_key = before.document_key
        and replaced.replaced_by_batch_id = before.batch_id;
    -- a pointer moved by a later batch: the state it held until now
    insert into raw.replaced_versions (document_key, content_sha256, source_name, batch_id,
        is_deleted, valid_from, valid_to, replaced_by_batch_id)
    select before.document_key, before.content_sha256, before.source_name, before.batch_id,
        before.is_deleted, before.updated_at, after.updated_at, after.batch_id
    from moved_from as before
    inner join moved_to as after on after.document_key = before.document_key
    where after.batch_id > before.batch_id;
    return null;
end
$$;
create or replace trigger current_versions_replaced
    after update on raw.current_versions
    referencing old table as moved_from new table as moved_to
    for each statement execute function raw.record_replaced_versions();

create table if not exists raw.object_listing (
    source_uri text not null,
    object_key text not null,
    etag text not null,
    byte_size bigint not null,
    batch_id bigint not null,
    first_seq integer not null,
    file_count integer not null,
    read_batch_id bigint not null,
    primary key (source_uri, object_key)
);
comment on table raw.object_listing is
    'One row per object of an object-store source (s3://bucket/prefix/) as last listed: its ETag and size, the batch that last listed it and where that batch''s ledger holds its files (file_seq first_seq .. first_seq + file_count - 1), and the batch that last read its bytes. The next ingest reads only objects that are new or changed.';

-- Written by the transform (duel.transform.build_models), not the loader: which dbt project built
-- the models. A build whose project is not the last whole build's (duel upgraded, a model, macro
-- or var edited) is a full refresh: the incremental models' rows written by other definitions
-- are not kept beside rows of the new ones.
create table if not exists raw.model_builds (
    build_id bigint generated always as identity primary key,
    finished_at timestamptz not null default now(),
    project_hash text not null,
    full_refresh boolean not null,
    duel_version text not null
);
comment on table raw.model_builds is
    'One row per whole build of the dbt models that succeeded (duel run, duel transform without --select, the DAG): when, the sha256 of the dbt project that built them, whether from scratch. The next build is a full refresh when the project differs.';
