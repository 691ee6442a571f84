{{
    config(
        materialized='incremental',
        incremental_strategy='replace_documents',
        on_schema_change='fail',
        post_hook=["{{ apply_keys() }}", "{{ record_whole_build() }}"],
        indexes=[
            {'columns': ['user_key']},
            {'columns': ['brand_id']},
            {'columns': ['batch_id']},
        ],
    )
}}

-- depends_on: {{ ref('stg_current_versions') }}
-- (the replace_documents strategy, macros/incremental.sql, replaces every row of a changed
-- document, including those of a document that now has no programs or tasks at all)

with

programs as (

    select * from {{ ref('int_programs') }}

),

changed_programs as (

    select * from programs
    {% if is_incremental() %}
    where batch_id > {{ batch_watermark() }}
    {% endif %}

),

final as (

    select
        program_key,
        user_key,
        program_position,
        program_id,
        brand_id,
        brand,
        brand_id = {{ unknown_brand_id() }} as is_unknown_brand,
        -- money to the cent, as declared (numeric(18, 2)); the same type on every build, so an
        -- incremental run's rows match the table's
        cast(total_sales_attributed as numeric(18, 2)) as total_sales_attributed,
        task_count,
        batch_id,
        program_id_defect,
        brand_defect,
        total_sales_attributed_defect,
        tasks_completed_defect,
        has_no_defects as is_clean

    from changed_programs

)

select * from final
