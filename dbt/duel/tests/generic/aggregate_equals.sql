{#
    Invariant test: an aggregate of the model (`expression`, by default its row count) equals
    `expected`, a SQL scalar expression, typically a subquery over another model or a source;
    within `tolerance` (an aggregate of the model too, default 0) when the values are rounded.
    An expression over no rows is NULL: write coalesce(sum(...), 0) where 0 is meant. Fails with
    one row giving both values.
#}
{% test aggregate_equals(model, expected, expression='count(*)', tolerance='0') %}

with

actual as (

    select
        {{ cast_as(expression, 'numeric') }} as actual_value,
        {{ cast_as(tolerance, 'numeric') }} as tolerance

    from {{ model }}

),

expectation as (

    select {{ cast_as(expected, 'numeric') }} as expected_value

),

final as (

    select actual.actual_value, expectation.expected_value
    from actual
    cross join expectation
    where
        (actual.actual_value is null) <> (expectation.expected_value is null)
        or abs(actual.actual_value - expectation.expected_value) > actual.tolerance

)

select * from final

{% endtest %}
