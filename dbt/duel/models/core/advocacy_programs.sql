{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='user_key',
        on_schema_change='fail',
        pre_hook="{{ delete_rows_of_changed_documents(children=['tasks_completed']) }}",
        post_hook="{{ apply_keys() }}",
        indexes=[
            {'columns': ['user_key']},
            {'columns': ['brand_id']},
            {'columns': ['batch_id']},
        ],
    )
}}

-- depends_on: {{ ref('stg_current_versions') }}
-- (the pre-hook deletes the rows of documents with a newer version, including those that now
-- have no programs or tasks at all)

with

programs as (

    select * from {{ ref('stg_advocacy_programs') }}

),

current_programs as (

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

    from current_programs

)

select * from final
