{#
    Invariant test: `expression` holds for every row of the model (a NULL result fails too).
    Returns the offending rows.
#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where not coalesce({{ expression }}, false)

{% endtest %}
