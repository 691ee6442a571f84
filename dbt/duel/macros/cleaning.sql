{#
    The cleaning rules, one pair of macros per kind of field: `<kind>_defect(json)` classifies a
    raw JSON value (a jsonb expression, NULL when the key is absent) into a defect class, NULL
    when the value is fine; `<kind>_value(json, defect)` casts the value, or gives NULL when its
    defect class means the value is unusable. Staging models call them; unit tests pin them down
    (models/staging/*.yml). The defect classes are described in models/docs.md.
#}

{# Whitespace trimmed from text values: space, tab, newline, carriage return, form feed. #}
{% macro json_text(json) -%}
    (case when jsonb_typeof({{ json }}) = 'string' then btrim({{ json }} #>> '{}', e' \t\n\r\f') end)
{%- endmacro %}

{# The text of a JSON string or number (numbers print in their canonical decimal form). #}
{% macro json_scalar_text(json) -%}
    (case when jsonb_typeof({{ json }}) in ('string', 'number') then btrim({{ json }} #>> '{}', e' \t\n\r\f') end)
{%- endmacro %}

{% macro is_missing(json) -%}
    ({{ json }} is null or jsonb_typeof({{ json }}) = 'null')
{%- endmacro %}

{% macro sql_list(values) -%}
    ({%- for value in values %}'{{ value | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor -%})
{%- endmacro %}

{% macro uuid_pattern() %}'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'{% endmacro %}
{% macro email_pattern() %}'^[a-z0-9_%+-]+(\.[a-z0-9_%+-]+)*@([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$'{% endmacro %}
{% macro url_pattern() %}'^https?://(([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}|[0-9]{1,3}(\.[0-9]{1,3}){3})(:[0-9]{1,5})?([/?#][^[:space:]]*)?$'{% endmacro %}
{% macro iso_timestamp_pattern() %}'^[0-9]{4}-[0-9]{2}-[0-9]{2}([t ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(z|[+-][0-9]{2}(:?[0-9]{2})?)?)?$'{% endmacro %}
{% macro iso_offset_pattern() %}'[t ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(z|[+-][0-9]{2}(:?[0-9]{2})?)$'{% endmacro %}
{% macro decimal_pattern() %}'^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(e[+-]?[0-9]+)?$'{% endmacro %}

{# ids: a UUID string -> uuid; "", null or malformed -> NULL. #}
{% macro uuid_defect(json) -%}
    case
        when {{ is_missing(json) }} then 'missing'
        when jsonb_typeof({{ json }}) <> 'string' then 'wrong-type'
        when {{ json_text(json) }} = '' then 'empty'
        when {{ json_text(json) }} !~* {{ uuid_pattern() }} then 'malformed'
    end
{%- endmacro %}

{% macro uuid_value(json, defect) -%}
    case when {{ defect }} is null then cast({{ lower_text(json_text(json)) }} as uuid) end
{%- endmacro %}

{# Free text (name): trimmed; a placeholder (any run of question marks) -> NULL. #}
{% macro text_defect(json, placeholder_pattern) -%}
    case
        when {{ is_missing(json) }} then 'missing'
        when jsonb_typeof({{ json }}) <> 'string' then 'wrong-type'
        when {{ json_text(json) }} = '' then 'empty'
        when {{ json_text(json) }} ~ '{{ placeholder_pattern }}' then 'placeholder'
    end
{%- endmacro %}

{% macro text_value(json, defect) -%}
    case when {{ defect }} is null then {{ json_text(json) }} end
{%- endmacro %}

{# email: trimmed, lower-cased, kept only when it has a valid format. #}
{% macro email_defect(json, placeholders) -%}
    case
        when {{ is_missing(json) }} then 'missing'
        when jsonb_typeof({{ json }}) <> 'string' then 'wrong-type'
        when {{ json_text(json) }} = '' then 'empty'
        when {{ lower_text(json_text(json)) }} in {{ sql_list(placeholders) }} then 'placeholder'
        when {{ lower_text(json_text(json)) }} !~ {{ email_pattern() }} then 'malformed'
    end
{%- endmacro %}

{% macro email_value(json, defect) -%}
    case when {{ defect }} is null then {{ lower_text(json_text(json)) }} end
{%- endmacro %}

{#
    Social handles: trimmed, lower-cased, exactly one leading @. A handle outside the platform's
    rules (letters, digits, '.', '_', and a length range) is kept and flagged.
#}
{% macro handle_text(json) -%}
    ('@' || ltrim({{ lower_text(json_text(json)) }}, '@'))
{%- endmacro %}

{% macro handle_defect(json, placeholders, min_length, max_length) -%}
    case
        when {{ is_missing(json) }} then 'missing'
        when jsonb_typeof({{ json }}) <> 'string' then 'wrong-type'
        when ltrim({{ json_text(json) }}, '@') = '' then 'empty'
        when {{ lower_text(json_text(json)) }} in {{ sql_list(placeholders) }} then 'placeholder'
        when {{ handle_text(json) }} !~ '^@[a-z0-9._]{ {{- min_length }},{{ max_length -}} }$' then 'breaks-platform-rules'
    end
{%- endmacro %}

{% macro handle_value(json, defect) -%}
    case when {{ defect }} is null or {{ defect }} = 'breaks-platform-rules' then {{ handle_text(json) }} end
{%- endmacro %}

{# Timestamps: ISO-8601 -> timestamptz; without an offset the time is taken as UTC. #}
{% macro timestamp_defect(json, placeholders) -%}
    case
        when {{ is_missing(json) }} then 'missing'
        when jsonb_typeof({{ json }}) <> 'string' then 'wrong-type'
        when {{ json_text(json) }} = '' then 'empty'
        when {{ lower_text(json_text(json)) }} in {{ sql_list(placeholders) }} then 'placeholder'
        when {{ json_text(json) }} !~* {{ iso_timestamp_pattern() }} then 'unparseable'
        when not pg_input_is_valid({{ json_text(json) }}, 'timestamp') then 'unparseable'
    end
{%- endmacro %}

{% macro timestamp_value(json, defect) -%}
    case
        when {{ defect }} is not null then null
        when {{ json_text(json) }} ~* {{ iso_offset_pattern() }} then cast({{ json_text(json) }} as timestamptz)
        else cast({{ json_text(json) }} as timestamp) at time zone 'UTC'
    end
{%- endmacro %}

{#
    Labels (brand, platform): trimmed text; a number (12345, or a string of digits) -> NULL.
    With `accepted`, other values are kept (case-folded) and flagged as unknown.
#}
{% macro label_defect(json, accepted=none) -%}
    case
        when {{ is_missing(json) }} then 'missing'
        when jsonb_typeof({{ json }}) = 'number' then 'number'
        when jsonb_typeof({{ json }}) <> 'string' then 'wrong-type'
        when {{ json_text(json) }} = '' then 'empty'
        when {{ json_text(json) }} ~ '^[+-]?[0-9]+(\.[0-9]+)?$' then 'number'
        {%- if accepted %}
        when {{ lower_text(json_text(json)) }} not in {{ sql_list(accepted) }} then 'unknown-value'
        {%- endif %}
    end
{%- endmacro %}

{% macro label_value(json, defect, case_fold=false) -%}
    case
        when {{ defect }} is null or {{ defect }} = 'unknown-value'
        then {% if case_fold %}{{ lower_text(json_text(json)) }}{% else %}{{ json_text(json) }}{% endif %}
    end
{%- endmacro %}

{# URLs: an http(s) URL with a host name (or IPv4 address), else NULL. #}
{% macro url_defect(json, placeholders) -%}
    case
        when {{ is_missing(json) }} then 'missing'
        when jsonb_typeof({{ json }}) <> 'string' then 'wrong-type'
        when {{ json_text(json) }} = '' then 'empty'
        when {{ lower_text(json_text(json)) }} in {{ sql_list(placeholders) }} then 'placeholder'
        when {{ json_text(json) }} !~* {{ url_pattern() }} then 'malformed'
    end
{%- endmacro %}

{% macro url_value(json, defect) -%}
    case when {{ defect }} is null then {{ json_text(json) }} end
{%- endmacro %}

{#
    Numbers: a JSON number or a decimal string. Shared first part of count_defect and
    amount_defect: the classes that make a value unusable as a number.
#}
{% macro number_defect_cases(json, placeholders=[]) -%}
        when {{ is_missing(json) }} then 'missing'
        when jsonb_typeof({{ json }}) = 'string' and {{ json_text(json) }} = '' then 'empty'
        {%- if placeholders %}
        when jsonb_typeof({{ json }}) = 'string' and {{ lower_text(json_text(json)) }} in {{ sql_list(placeholders) }} then 'placeholder'
        {%- endif %}
        when jsonb_typeof({{ json }}) = 'string' and {{ lower_text(json_text(json)) }} in ('nan', '+nan', '-nan') then 'not-a-number'
        when jsonb_typeof({{ json }}) not in ('number', 'string') then 'wrong-type'
        when jsonb_typeof({{ json }}) = 'string' and {{ json_text(json) }} !~* {{ decimal_pattern() }} then 'non-numeric'
        when jsonb_typeof({{ json }}) = 'string' and not pg_input_is_valid({{ json_text(json) }}, 'numeric') then 'out-of-range'
{%- endmacro %}

{# The value of a JSON number or decimal string as numeric (only once number_defect_cases passed). #}
{% macro json_number(json) -%}
    cast({{ json_scalar_text(json) }} as numeric)
{%- endmacro %}

{#
    The plausible range of a measure, {min, max}, from var `measure_ranges` (dbt_project.yml,
    where the bounds are justified). The models' types are sized for bounds up to 10^12 in
    magnitude, so a larger one is refused here, when dbt compiles, not by an overflow later.
#}
{% macro measure_range(measure) -%}
    {%- set ranges = var('measure_ranges') -%}
    {%- if measure not in ranges -%}
        {{ exceptions.raise_compiler_error("var measure_ranges has no range for '" ~ measure ~ "'") }}
    {%- endif -%}
    {%- set range = ranges[measure] -%}
    {%- set bound = 10 ** 12 -%}
    {%- if not (range['min'] >= 0 - bound and range['min'] <= range['max'] and range['max'] <= bound) -%}
        {{ exceptions.raise_compiler_error("measure_ranges." ~ measure ~ " must lie within -10^12..10^12 (the models' types are sized for that)") }}
    {%- endif -%}
    {{ return(range) }}
{%- endmacro %}

{#
    Counts (likes, comments, shares, reach): whole numbers within the measure's range (from 0);
    below 0 is `negative`, outside the range `out-of-range`, both NULL.
#}
{% macro count_defect(json, range) -%}
    case
        {{ number_defect_cases(json) }}
        when {{ json_number(json) }} < 0 then 'negative'
        when {{ json_number(json) }} <> trunc({{ json_number(json) }}) then 'fractional'
        when {{ json_number(json) }} not between {{ range['min'] }} and {{ range['max'] }} then 'out-of-range'
    end
{%- endmacro %}

{% macro count_value(json, defect) -%}
    case when {{ defect }} is null then cast({{ json_number(json) }} as bigint) end
{%- endmacro %}

{#
    Amounts (total_sales_attributed): money, rounded to cents (half away from zero) as
    numeric(18, 2). Outside the measure's range -> `out-of-range`, NULL; a negative amount within
    it is kept and flagged `negative`. The classes judge the delivered value, before rounding.
#}
{% macro amount_defect(json, placeholders, range) -%}
    case
        {{ number_defect_cases(json, placeholders) }}
        when {{ json_number(json) }} not between {{ range['min'] }} and {{ range['max'] }} then 'out-of-range'
        when {{ json_number(json) }} < 0 then 'negative'
    end
{%- endmacro %}

{% macro amount_value(json, defect) -%}
    cast(
        case
            when {{ defect }} is null or {{ defect }} = 'negative'
            then round({{ json_number(json) }}, 2)
        end
        as numeric(18, 2)
    )
{%- endmacro %}

{# Lists (advocacy_programs, tasks_completed): an array, possibly empty. #}
{% macro array_defect(json) -%}
    case
        when {{ is_missing(json) }} then 'missing'
        when jsonb_typeof({{ json }}) <> 'array' then 'wrong-type'
    end
{%- endmacro %}

{# The elements of a JSON array with their 1-based positions; anything else has none. #}
{% macro array_elements(json) -%}
    jsonb_array_elements(case when jsonb_typeof({{ json }}) = 'array' then {{ json }} else '[]'::jsonb end)
{%- endmacro %}

{#
    The brand name brand_id derives from: trimmed, NFKC-normalised, inner whitespace collapsed and
    case-folded (macros/text.sql: the same on every database and collation).
#}
{% macro normalised_brand(brand) -%}
    {{ fold_text(brand) }}
{%- endmacro %}
