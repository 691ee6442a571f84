{#
    The user documents of `documents` (a relation or CTE with int_current_documents' columns:
    document_key, source_name, content_sha256, batch_id, loaded_at, updated_at, parse_status,
    document), one row each: the user fields extracted, cast and cleaned, each with its defect
    class (the rules: macros/cleaning.sql, var `fields`). A whole query (its own `with`), so it
    can stand as a CTE's body. int_users runs it over the current documents; the snapshot over
    the versions no build saw (macros/snapshot_staging.sql).
#}
{% macro clean_users(documents) -%}
-- every field of var `fields`' user, in its order; the list's value is its length, program_count
{% set value_names = {'advocacy_programs': 'program_count'} -%}
{#- the document's lineage, carried through as it is -#}
{% set lineage = ['document_key', 'source_name', 'content_sha256', 'batch_id', 'loaded_at',
    'updated_at', 'parse_status'] -%}

with

source_documents as (

    select * from {{ documents }}

),

extracted as (

    select
        {%- for column in lineage %}
        {{ column }},
        {%- endfor %}
        {%- for field in var('fields')['user'] %}
        {{ json_field('fields', 'document', field) }} as {{ field }}_json{{ ',' if not loop.last }}
        {%- endfor %}

    from source_documents
    {{ json_fields_from('document', var('fields')['user'], 'fields') }}

),

-- each field's JSON kind and trimmed text, computed once per row (macros/cleaning.sql,
-- field_scalar_columns; macros/portable.sql, select_computed_once)
scalars as (

    {{ select_computed_once('extracted', 'field_scalars', field_scalar_columns('user')) }}

),

-- each field's defect class, computed once per row
classified as (

    {{ select_computed_once('scalars', 'defects', field_defect_columns('user')) }}

),

cleaned as (

    select
        {{ surrogate_key(['document_key']) }} as user_key,
        {%- for column in lineage %}
        {{ column }},
        {%- endfor %}
        {%- for field in var('fields')['user'] %}
        {{ field_value('user', field) }} as {{ value_names.get(field, field) }},
        {%- endfor %}
        {%- for field in var('fields')['user'] %}
        {{ field }}_defect{{ ',' if not loop.last }}
        {%- endfor %}

    from classified

),

final as (

    select
        *,
        {{ has_no_defects('user') }} as has_no_defects

    from cleaned

)

select * from final
{%- endmacro %}

{#
    dbt.base's columns, in its contract's order (base.yml), from clean_users' columns and two flags that depend on
    other documents: `newer_quarantined_batch_id` (a later delivery of the document was
    quarantined) and `is_duplicate_email` (another current user has the email). Without
    `flags_known` (a version no build saw: the snapshot's versions between two builds) those
    flags are NULL, not known, and so is `is_clean` unless the version's own defects already
    rule it out (false).
#}
{% macro user_row_columns(flags_known=true) -%}
        user_key,
        document_key,
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
        {%- if flags_known %}
        newer_quarantined_batch_id is not null as has_newer_quarantined_delivery,
        newer_quarantined_batch_id,
        {%- else %}
        cast(null as boolean) as has_newer_quarantined_delivery,
        cast(null as bigint) as newer_quarantined_batch_id,
        {%- endif %}
        parse_status = 'repaired' as is_repaired,
        user_id is not null as is_identifiable,
        {%- if flags_known %}
        is_duplicate_email,
        {%- else %}
        cast(null as boolean) as is_duplicate_email,
        {%- endif %}
        {%- for field in var('fields')['user'] %}
        {{ field }}_defect,
        {%- endfor %}
        {%- if flags_known %}
        has_no_defects
        and not is_duplicate_email
        and newer_quarantined_batch_id is null as is_clean
        {%- else %}
        case when not has_no_defects then false end as is_clean
        {%- endif %}
{%- endmacro %}
