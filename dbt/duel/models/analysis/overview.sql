with

users as (

    select * from {{ ref('base') }}

),

programs as (

    select * from {{ ref('advocacy_programs') }}

),

tasks as (

    select * from {{ ref('tasks_completed') }}

),

outliers as (

    select * from {{ ref('sales_outliers') }}

),

user_measures as (

    select
        cast(count(*) as bigint) as user_count,
        cast(count(users.user_id) as bigint) as user_id_known,
        {{ known_share('count(users.user_id)', 'count(*)') }} as user_id_known_share,
        cast(count(users.joined_at) as bigint) as joined_at_known,
        {{ known_share('count(users.joined_at)', 'count(*)') }} as joined_at_known_share,
        min(users.joined_at) as first_joined_at,
        max(users.joined_at) as last_joined_at,
        -- no program rows: an empty list (0) or an unusable one (NULL, unknown length)
        cast(
            count(*) filter (where users.program_count = 0 or users.program_count is null) as bigint
        ) as users_without_programs

    from users

),

program_measures as (

    select
        {{ sales_measures('programs') }},
        cast(count(*) filter (where not programs.is_unknown_brand) as bigint) as brand_known,
        {{ known_share('count(*) filter (where not programs.is_unknown_brand)', 'count(*)') }}
            as brand_known_share,
        -- no task rows: an empty list (0) or an unusable one (NULL)
        cast(
            count(*) filter (where programs.task_count = 0 or programs.task_count is null) as bigint
        ) as programs_without_tasks

    from programs

),

outlier_measures as (

    select
        cast(count(*) filter (where outliers.is_scored) as bigint) as sales_scored,
        cast(count(*) filter (where outliers.is_outlier) as bigint) as sales_outliers

    from outliers

),

task_measures as (

    select
        {{ task_measures('tasks') }},
        cast(count(tasks.platform) as bigint) as platform_known,
        {{ known_share('count(tasks.platform)', 'count(*)') }} as platform_known_share

    from tasks

),

final as (

    select
        user_measures.user_count,
        user_measures.user_id_known,
        user_measures.user_id_known_share,
        user_measures.joined_at_known,
        user_measures.joined_at_known_share,
        user_measures.first_joined_at,
        user_measures.last_joined_at,
        user_measures.users_without_programs,
        program_measures.program_count,
        program_measures.sales,
        program_measures.sales_known,
        program_measures.sales_known_share,
        program_measures.sales_average,
        program_measures.sales_negative,
        program_measures.brand_known,
        program_measures.brand_known_share,
        program_measures.programs_without_tasks,
        outlier_measures.sales_scored,
        outlier_measures.sales_outliers,
        {{ task_measure_columns('task_measures') }},
        task_measures.platform_known,
        task_measures.platform_known_share

    from user_measures
    cross join program_measures
    cross join outlier_measures
    cross join task_measures

)

select * from final
