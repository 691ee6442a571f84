-- Aggregates and times: first_by, typecast to numeric, utc_month, seconds_between.
with

rows_in as (

    select 1 as grp, 'b' as label, {{ cast_as("'2024-01-31 23:30:00+00:00'", 'timestamptz') }} as at_time
    union all
    select 1 as grp, 'a' as label, {{ cast_as("'2024-02-01 00:30:00+00:00'", 'timestamptz') }} as at_time
    union all
    select 2 as grp, 'c' as label, {{ cast_as("'2024-03-10 12:00:00+00:00'", 'timestamptz') }} as at_time

),

final as (

    select
        grp,
        {{ first_by('label', ['at_time', 'label']) }} as first_label,
        cast(round({{ typecast('count(*)', 'numeric') }} / 3, 6) as numeric(9, 6)) as share,
        {{ utc_month('min(at_time)') }} as first_month,
        cast({{ seconds_between('min(at_time)', 'max(at_time)') }} as numeric(12, 3)) as seconds
    from rows_in
    group by grp

)

select * from final
