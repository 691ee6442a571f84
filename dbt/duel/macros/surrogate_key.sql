{#
    A deterministic surrogate key: the md5 of the given expressions, as a uuid.

    The same inputs give the same key on every run, full refresh or database, so keys never
    change under the user. Parts are joined with the ASCII unit separator (chr(31)) and a NULL
    part is the record separator (chr(30)), characters that file names and positions never hold.
#}
{% macro surrogate_key(expressions) -%}
    md5(
        {%- for expression in expressions %}
        coalesce(cast({{ expression }} as text), chr(30))
        {%- if not loop.last %} || chr(31) || {% endif %}
        {%- endfor %}
    )::uuid
{%- endmacro %}

{# The brand_id of the "unknown brand" row: programs without a usable brand point to it. #}
{% macro unknown_brand_id() -%}
    '00000000-0000-0000-0000-000000000000'::uuid
{%- endmacro %}
