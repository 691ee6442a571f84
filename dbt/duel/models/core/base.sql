{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='user_key',
        on_schema_change='fail',
        post_hook=[
            "{{ delete_rows_of_deleted_documents(children=['tasks_completed', 'advocacy_programs']) }}",
            "{{ apply_keys() }}",
        ],
        indexes=[
            {'columns': ['document_key'], 'unique': true},
            {'columns': ['email']},
            {'columns': ['batch_id']},
        ],
    )
}}

-- depends_on: {{ ref('stg_current_versions') }}

{%- set user_columns = [
    'user_key', 'document_key', 'user_id', 'name', 'email', 'instagram_handle', 'tiktok_handle', 'joined_at',
    'program_count', 'content_sha256', 'batch_id', 'loaded_at', 'updated_at',
    'newer_quarantined_batch_id',
] -%}
{%- set defect_columns = [
    'user_id_defect', 'name_defect', 'email_defect', 'instagram_handle_defect',
    'tiktok_handle_defect', 'joined_at_defect', 'advocacy_programs_defect',
] -%}

{#- one row per current file, as the layers below need it: all of them, or those changed since the last build -#}
{%- set documents_select -%}
    select
        {% for column in user_columns %}{{ column }},
        {% endfor -%}
        source_name as source_file,
        parse_status = 'repaired' as is_repaired,
        {% for column in defect_columns %}{{ column }}{{ "," if not loop.last }}
        {% endfor %}
    from delivered
{%- endset %}

with

documents as (

    select * from {{ ref('stg_user_documents') }}

),

batch_files as (

    select * from {{ ref('stg_batch_files') }}

),

current_versions as (

    select * from {{ ref('stg_current_versions') }}

),

{% if is_incremental() %}

-- documents whose current version changed since the last build (a new version, a return, a
-- tombstone), whose delivery was quarantined since, or that are stale now (a later delivery may
-- have mended them)
changed_keys as (

    select document_key from current_versions where batch_id > {{ batch_watermark() }}

    union

    select document_key from batch_files
    where batch_id > {{ batch_watermark() }} and status = 'quarantined'

    union

    select document_key from {{ this }} where has_newer_quarantined_delivery

),

-- their deliveries since the last build: the latest one says whether they are stale
recent_deliveries as (

    select batch_files.*
    from batch_files
    inner join changed_keys using (document_key)
    where batch_files.batch_id > {{ batch_watermark() }}

),

{% else %}

-- only documents with a quarantined delivery can be stale: their deliveries, all of them
recent_deliveries as (

    select batch_files.*
    from batch_files
    where document_key in (select document_key from batch_files where status = 'quarantined')

),

{% endif %}

-- each document's latest delivery among those (not every document has one)
latest_delivery as (

    select distinct on (document_key) document_key, batch_id, status
    from recent_deliveries
    where status <> 'skipped'
    order by document_key, batch_id desc, file_seq desc

),

delivered as (

    select
        documents.*,
        {% if is_incremental() %}
        case
            when latest_delivery.document_key is null then existing.newer_quarantined_batch_id
            when latest_delivery.status = 'quarantined' then latest_delivery.batch_id
        end as newer_quarantined_batch_id
        {% else %}
        case when latest_delivery.status = 'quarantined' then latest_delivery.batch_id end
            as newer_quarantined_batch_id
        {% endif %}

    from documents
    left join latest_delivery
        on latest_delivery.document_key = documents.document_key
    {% if is_incremental() %}
    left join {{ this }} as existing
        on existing.document_key = documents.document_key
    where documents.document_key in (select document_key from changed_keys)
    {% endif %}

),

{% if is_incremental() %}

-- the current documents among them
changed as (

    {{ documents_select }}

),

-- an email a changed document has now or had before: who else shares it may have changed
touched_emails as (

    select email from changed where email is not null

    union

    select existing.email
    from {{ this }} as existing
    inner join changed_keys
        on changed_keys.document_key = existing.document_key
    where existing.email is not null

),

-- unchanged documents sharing such an email: their row is kept, only the flags are recomputed
sharing as (

    select
        {% for column in user_columns %}{{ column }},
        {% endfor -%}
        source_file,
        is_repaired,
        {% for column in defect_columns %}{{ column }}{{ "," if not loop.last }}
        {% endfor %}
    from {{ this }}
    where email in (select email from touched_emails)
        and document_key not in (select document_key from changed_keys)

),

rebuilt as (

    select * from changed
    union all
    select * from sharing

),

{% else %}

rebuilt as (

    {{ documents_select }}

),

{% endif %}

flagged as (

    select
        *,
        coalesce(count(*) over (partition by email) > 1 and email is not null, false)
            as is_duplicate_email

    from rebuilt

),

final as (

    select
        user_key,
        document_key,
        user_id,
        name,
        email,
        instagram_handle,
        tiktok_handle,
        joined_at,
        program_count,
        source_file,
        content_sha256,
        batch_id,
        loaded_at,
        updated_at,
        is_repaired,
        newer_quarantined_batch_id is not null as has_newer_quarantined_delivery,
        newer_quarantined_batch_id,
        user_id is not null as is_identifiable,
        is_duplicate_email,
        {% for column in defect_columns %}{{ column }},
        {% endfor -%}
        (
            {% for column in defect_columns %}{{ column }} is null
            and {% endfor %}not is_duplicate_email
            and newer_quarantined_batch_id is null
        ) as is_clean

    from flagged

)

select * from final
