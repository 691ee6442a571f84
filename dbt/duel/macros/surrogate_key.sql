{#
    A deterministic surrogate key: the md5 of the given expressions, as a uuid.

    The same inputs give the same key on every run, full refresh or database, so keys never
    change under the user. Parts are joined with the ASCII unit separator (chr(31)) and a NULL
    part is the record separator (chr(30)), characters that file names and positions never hold.
#}
{% macro surrogate_key(expressions) -%}
    {%- set parts = [] -%}
    {%- for expression in expressions -%}
        {%- do parts.append('coalesce(' ~ cast_as(expression, 'text') ~ ', chr(30))') -%}
    {%- endfor -%}
    {{ md5_uuid(parts | join(' || chr(31) || ')) }}
{%- endmacro %}

{# The brand_id of the "unknown brand" row: programs without a usable brand point to it. #}
{% macro unknown_brand_id() -%}
    {{ uuid_literal('00000000-0000-0000-0000-000000000000') }}
{%- endmacro %}
