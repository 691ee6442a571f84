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

with

documents as (

    select * from {{ ref('stg_user_documents') }}

),

{% if is_incremental() %}

changed_files as (

    select source_name
    from documents
    where batch_id > {{ batch_watermark() }}

),

-- an email a changed file has now or had before: who else shares it may have changed
touched_emails as (

    select documents.email
    from documents
    inner join changed_files
        on changed_files.source_name = documents.source_name
    where documents.email is not null

    union

    select existing.email
    from {{ this }} as existing
    inner join changed_files
        on changed_files.source_name = existing.source_file
    where existing.email is not null

),

-- changed files, and every file whose duplicate-email flag they may change
rebuilt_files as (

    select source_name from changed_files

    union

    select existing.source_file
    from {{ this }} as existing
    where existing.email in (select email from touched_emails)

),

{% endif %}

current_documents as (

    select * from documents
    {% if is_incremental() %}
    where source_name in (select source_name from rebuilt_files)
    {% endif %}

),

flagged as (

    select
        *,
        coalesce(count(*) over (partition by email) > 1 and email is not null, false)
            as is_duplicate_email

    from current_documents

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
        source_name as source_file,
        content_sha256,
        batch_id,
        loaded_at,
        updated_at,
        parse_status = 'repaired' as is_repaired,
        user_id is not null as is_identifiable,
        is_duplicate_email,
        user_id_defect,
        name_defect,
        email_defect,
        instagram_handle_defect,
        tiktok_handle_defect,
        joined_at_defect,
        advocacy_programs_defect,
        has_no_defects and not is_duplicate_email as is_clean

    from flagged

)

select * from final
