{#
    Invariant test: an aggregate of the model (`expression`, by default its row count) equals
    `expected`, a SQL scalar expression, typically a subquery over another model or a source.
    Fails with one row giving both values.
#}
{% test aggregate_equals(model, expected, expression='count(*)') %}

with

actual as (

    select cast({{ expression }} as numeric) as actual_value from {{ model }}

),

expectation as (

    select cast({{ expected }} as numeric) as expected_value

),

final as (

    select actual.actual_value, expectation.expected_value
    from actual
    cross join expectation
    where actual.actual_value is distinct from expectation.expected_value

)

select * from final

{% endtest %}
