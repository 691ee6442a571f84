{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='user_key',
        on_schema_change='fail',
        indexes=[
            {'columns': ['user_key'], 'unique': true},
            {'columns': ['source_file'], 'unique': true},
            {'columns': ['email']},
            {'columns': ['batch_id']},
        ],
    )
}}

{%- set user_columns = [
    'user_key', 'user_id', 'name', 'email', 'instagram_handle', 'tiktok_handle', 'joined_at',
    'program_count', 'content_sha256', 'batch_id', 'loaded_at', 'updated_at',
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
    from documents
{%- endset %}

with

documents as (

    select * from {{ ref('stg_user_documents') }}

),

{% if is_incremental() %}

-- files whose current version arrived after the last build
changed as (

    {{ documents_select }}
    where batch_id > {{ batch_watermark() }}

),

-- an email a changed file has now or had before: who else shares it may have changed
touched_emails as (

    select email from changed where email is not null

    union

    select existing.email
    from {{ this }} as existing
    inner join changed
        on changed.source_file = existing.source_file
    where existing.email is not null

),

-- unchanged files sharing such an email: their row is kept, only the flags are recomputed
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
        and source_file not in (select source_file from changed)

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
        user_id is not null as is_identifiable,
        is_duplicate_email,
        {% for column in defect_columns %}{{ column }},
        {% endfor -%}
        (
            {% for column in defect_columns %}{{ column }} is null
            and {% endfor %}not is_duplicate_email
        ) as is_clean

    from flagged

)

select * from final
