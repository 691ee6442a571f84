-- Relational steps and arithmetic: lateral_lookup, distinct_on, in_computed_list,
-- select_computed_once, integer_divide, truncate_number, group_medians. One row per construct
-- and key.
with

outer_rows as (

    select 1 as id, 'a' as k, 'x' as h
    union all
    select 2 as id, 'b' as k, 'y' as h
    union all
    select 3 as id, 'c' as k, 'z' as h

),

inner_rows as (

    select 'a' as k, 'x' as h, 10 as v, 2 as n
    union all
    select 'a' as k, 'x' as h, 11 as v, 1 as n
    union all
    select 'b' as k, 'y' as h, 20 as v, 1 as n
    union all
    select 'b' as k, 'q' as h, 21 as v, 1 as n
    union all
    select 'b' as k, 'y' as h, 22 as v, 1 as n

),

numbers as (

    select '7' as whole_item, 7 as whole, '2.7' as fraction_item, {{ cast_as("'2.7'", 'numeric') }} as fraction
    union all
    select '-7' as whole_item, -7 as whole, '-2.7' as fraction_item, {{ cast_as("'-2.7'", 'numeric') }} as fraction
    union all
    select '6' as whole_item, 6 as whole, '3' as fraction_item, {{ cast_as("'3'", 'numeric') }} as fraction

),

-- groups of odd and even size, ties, one value, values in no order; `size` on every row
sample as (

    select 'odd' as grp, 3 as size, {{ cast_as("'3.5'", 'numeric') }} as amount
    union all
    select 'odd' as grp, 3 as size, {{ cast_as("'1'", 'numeric') }} as amount
    union all
    select 'odd' as grp, 3 as size, {{ cast_as("'2.25'", 'numeric') }} as amount
    union all
    select 'even' as grp, 4 as size, {{ cast_as("'4'", 'numeric') }} as amount
    union all
    select 'even' as grp, 4 as size, {{ cast_as("'1'", 'numeric') }} as amount
    union all
    select 'even' as grp, 4 as size, {{ cast_as("'3'", 'numeric') }} as amount
    union all
    select 'even' as grp, 4 as size, {{ cast_as("'2'", 'numeric') }} as amount
    union all
    select 'ties' as grp, 4 as size, {{ cast_as("'5'", 'numeric') }} as amount
    union all
    select 'ties' as grp, 4 as size, {{ cast_as("'1'", 'numeric') }} as amount
    union all
    select 'ties' as grp, 4 as size, {{ cast_as("'5'", 'numeric') }} as amount
    union all
    select 'ties' as grp, 4 as size, {{ cast_as("'5'", 'numeric') }} as amount
    union all
    select 'one' as grp, 1 as size, {{ cast_as("'-7.5'", 'numeric') }} as amount

),

medians as (

    {{ group_medians('sample', 'grp', 'size', 'amount', aggregates=[['max(amount)', 'largest']]) }}

),

looked_up as (

    select outer_rows.k, found.v
    from outer_rows
    {{ lateral_lookup('inner_rows', 'found', [['k', 'outer_rows.k'], ['h', 'outer_rows.h']], 'offset 0') }}

),

{%- set first_per_key = (['k'], ['k asc', 'n asc', 'v desc']) %}

firsts as (

    select {{ distinct_on(*first_per_key) }}
        k,
        v
    from inner_rows
    where v > 0
    {{ distinct_on_end(*first_per_key) }}

),

listed as (

    select k, v from inner_rows
    where {{ in_computed_list('inner_rows.v', 'select v + 1 from inner_rows where n = 2') }}

),

computed as (

    {{ select_computed_once('inner_rows', 'doubled', [['v * 2', 'twice'], ['v * 2 + n', 'twice_plus_n']]) }}

),

final as (

    select 'lateral_lookup' as construct, k as item, {{ cast_as('v', 'numeric(12, 2)') }} as result
    from looked_up
    union all
    select 'distinct_on' as construct, k as item, {{ cast_as('v', 'numeric(12, 2)') }} as result
    from firsts
    union all
    select 'in_computed_list' as construct, k as item, {{ cast_as('v', 'numeric(12, 2)') }} as result
    from listed
    union all
    select
        'select_computed_once' as construct,
        k || h || {{ cast_as('v', 'text') }} as item,
        {{ cast_as('twice + twice_plus_n', 'numeric(12, 2)') }} as result
    from computed
    union all
    select
        'integer_divide' as construct,
        whole_item as item,
        {{ cast_as(integer_divide('whole', 2), 'numeric(12, 2)') }} as result
    from numbers
    union all
    select
        'truncate_number' as construct,
        fraction_item as item,
        {{ cast_as(truncate_number('fraction'), 'numeric(12, 2)') }} as result
    from numbers
    union all
    select
        'group_medians' as construct,
        grp as item,
        {{ cast_as('median', 'numeric(12, 2)') }} as result
    from medians
    union all
    select
        'group_medians, aggregate' as construct,
        grp as item,
        {{ cast_as('largest', 'numeric(12, 2)') }} as result
    from medians

)

select * from final
