{#
    dbt's `relationships`: every non-NULL value of `column_name` is a value of `field` in `to`.
    Along a validated foreign key the tables are not read at all (macros/keys.sql,
    foreign_key_enforced): Postgres has checked every row.
#}
{% test relationships(model, column_name, to, field) %}

with child as (
    select {{ column_name }} as from_field
    from {{ model }}
    where {{ column_name }} is not null
),

parent as (
    select {{ field }} as to_field
    from {{ to }}
)

select from_field

from child
left join parent
    on child.from_field = parent.to_field

where
    parent.to_field is null
    and not {{ foreign_key_enforced(model, column_name, to, field) }}

{% endtest %}
