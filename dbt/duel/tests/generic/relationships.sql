{#
    dbt's `relationships` (its own SQL, dbt.default__test_relationships): every non-NULL value of
    `column_name` is a value of `field` in `to`. Along a foreign key whose checks fire, the
    tables are not read at all (macros/keys.sql, foreign_key_enforced): Postgres has checked
    every row.
#}
{% test relationships(model, column_name, to, field) %}

select *
from (
    {{ dbt.default__test_relationships(model, column_name, to, field) }}
) as orphans
where not {{ foreign_key_enforced(model, column_name, to, field) }}

{% endtest %}
