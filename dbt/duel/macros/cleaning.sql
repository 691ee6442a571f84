{#
    The cleaning rules. Every field's rule is data, in dbt_project.yml: its kind (var `fields`),
    its placeholders (var `placeholders`), its range (var `measure_ranges`), the formats (var
    `defect_patterns`) and the classes (var `defect_classes`). duel's exploration of a dump
    (src/duel/defects.py) applies the same vars, kind for kind, in Python.

    The models call `field_defect(entity, field)`, which classifies the raw JSON value in the
    column `<field>_json` (a JSON value: jsonb on Postgres, variant on Spark; NULL when the key is
    absent) into a defect class, NULL when the value is fine, and `field_value(entity, field)`, which casts the value, or
    gives NULL when its class `<field>_defect` means the value is unusable. Both read the
    value's kind and trimmed text from the columns `<field>_kind` and `<field>_text`, which a
    step before computes once per row (field_scalar_columns). Each kind is a pair
    of macros, `<kind>_defect(json, rule)` and `<kind>_value(json, defect, rule)`; unit tests pin them
    down (models/intermediate/*.yml). The classes are described in models/docs.md. Every
    database-specific construct goes through macros/portable.sql, so the rules build on Postgres
    and on Spark alike.
#}

{# The rule of one field (var `fields`), with its placeholders (every field's and its own) and, for measures, its range. #}
{% macro field_rule(entity, field) -%}
    {%- set fields = var('fields')[entity] -%}
    {%- if field not in fields -%}
        {{ exceptions.raise_compiler_error("var fields has no field '" ~ field ~ "' for " ~ entity) }}
    {%- endif -%}
    {%- set rule = dict(fields[field]) -%}
    {%- do rule.update({'placeholders': var('placeholders').get('every_field', []) + var('placeholders').get(field, [])}) -%}
    {%- if rule['kind'] in ('count', 'amount') -%}
        {%- do rule.update({'range': measure_range(field)}) -%}
    {%- endif -%}
    {{ return(rule) }}
{%- endmacro %}

{% macro field_defect(entity, field) -%}
    {%- set rule = field_rule(entity, field) -%}
    {{ context[rule['kind'] ~ '_defect'](field ~ '_json', rule) }}
{%- endmacro %}

{% macro field_value(entity, field) -%}
    {%- set rule = field_rule(entity, field) -%}
    {{ context[rule['kind'] ~ '_value'](field ~ '_json', field ~ '_defect', rule) }}
{%- endmacro %}

{#
    Every field's defect class as `[expression, '<field>_defect']`, for select_computed_once.
    `record_kind`: for a record that is an element of a list (a program, a task), the column
    holding the element's JSON kind: an element that is not an object (a string, a number,
    null, a list) has no fields, and each of them is `not-an-object` rather than `missing`.
#}
{% macro field_defect_columns(entity, record_kind=none) -%}
    {%- set columns = [] -%}
    {%- for field in var('fields')[entity] -%}
        {%- set defect = field_defect(entity, field) -%}
        {%- if record_kind is not none -%}
            {%- set defect = "case when " ~ record_kind ~ " <> 'object' then "
                ~ defect_class('not-an-object') ~ " else " ~ defect ~ " end" -%}
        {%- endif -%}
        {%- do columns.append([defect, field ~ '_defect']) -%}
    {%- endfor -%}
    {{ return(columns) }}
{%- endmacro %}

{# True when none of the entity's fields has a defect (the `<field>_defect` columns). #}
{% macro has_no_defects(entity) -%}
    (
        {%- for field in var('fields')[entity] %}
        {{ field }}_defect is null{{ ' and' if not loop.last }}
        {%- endfor %}
    )
{%- endmacro %}

{# One `['<field>', <relation>.<field>_defect]` row per field of the entity, for lateral_values. #}
{% macro field_defect_rows(entity, relation) -%}
    {%- set rows = [] -%}
    {%- for field in var('fields')[entity] -%}
        {%- do rows.append(["'" ~ field ~ "'", relation ~ '.' ~ field ~ '_defect']) -%}
    {%- endfor -%}
    {{ return(rows) }}
{%- endmacro %}

{#
    The columns a record's defect group is kept by (int_defect_sums), in order: the record type,
    its batch, whether it is clean, the user flags (`user_defect_flags`: NULL for programs and
    tasks), and every field's defect class of users, programs and tasks (field names are unique
    across the three; NULL for another entity's fields).
#}
{% macro defect_group_columns() -%}
    {%- set columns = ['record_type', 'batch_id', 'is_clean'] -%}
    {%- for flag in user_defect_flags('users') -%}
        {%- do columns.append(flag[1]) -%}
    {%- endfor -%}
    {%- for entity in ['user', 'program', 'task'] -%}
        {%- for field in var('fields')[entity] -%}
            {%- do columns.append(field ~ '_defect') -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(columns) }}
{%- endmacro %}

{#
    What data_quality and data_quality_summary count of a user record beyond its fields' classes,
    as [expression over `users` (base), name]: whether the whole record (the user, its
    programs and tasks) is clean (`unclean` names the users with an unclean program or task,
    joined), whether its file was repaired, its email shared, its newest delivery quarantined,
    and whether it has no usable key.
#}
{% macro user_defect_flags(users, unclean='unclean_users') -%}
    {{ return([
        [users ~ '.is_clean and ' ~ unclean ~ '.user_key is null', 'is_clean_record'],
        [users ~ '.is_repaired', 'is_repaired'],
        [users ~ '.is_duplicate_email', 'is_duplicate_email'],
        [users ~ '.has_newer_quarantined_delivery', 'has_newer_quarantined_delivery'],
        [text_starts_with(users ~ '.document_key', "'content:'"), 'is_keyless'],
    ]) }}
{%- endmacro %}

{#
    A SELECT of `relation`'s records (each with its user_key) counted (`records`) per user and
    defect group (defect_group_columns): int_defect_sums' contributions, from which data_quality
    unpivots the fields of these groups, not of every record. `flags`: whether `relation` has
    the columns user_defect_flags() names (users: true; programs and tasks: NULL); a user is one
    record, its row counted as it is, not grouped.
#}
{% macro defect_groups(entity, relation, flags=false) -%}
    {%- set given = {'record_type': "'" ~ entity ~ "'", 'batch_id': relation ~ '.batch_id', 'is_clean': relation ~ '.is_clean'} -%}
    {%- for flag in user_defect_flags(relation) if flags -%}
        {%- do given.update({flag[1]: relation ~ '.' ~ flag[1]}) -%}
    {%- endfor -%}
    {%- for field in var('fields')[entity] -%}
        {%- do given.update({field ~ '_defect': relation ~ '.' ~ field ~ '_defect'}) -%}
    {%- endfor -%}
    {%- set flag_names = user_defect_flags('users') | map(attribute=1) | list -%}
    select
        {{ relation }}.user_key,
        {%- for column in defect_group_columns() %}
        {%- if column in given %}
        {{ given[column] }} as {{ column }},
        {%- else %}
        {{ cast_as('null', 'boolean' if column in flag_names else 'text') }} as {{ column }},
        {%- endif %}
        {%- endfor %}
        {%- if flags %}
        cast(1 as bigint) as records
    from {{ relation }}
        {%- else %}
        cast(count(*) as bigint) as records
    from {{ relation }}
    group by {% for n in range(defect_group_columns() | length + 1) %}{{ n + 1 }}{{ ', ' if not loop.last }}{% endfor %}
        {%- endif %}
{%- endmacro %}

{# A defect class as a SQL literal; a class that is not in var `defect_classes` does not compile. #}
{% macro defect_class(name) -%}
    {%- if name not in var('defect_classes') -%}
        {{ exceptions.raise_compiler_error("'" ~ name ~ "' is not a defect class (var defect_classes)") }}
    {%- endif -%}
    '{{ name }}'
{%- endmacro %}

{# A regular expression (a Python string) as a SQL literal, for regex_match (macros/portable.sql). #}
{% macro pattern_literal(pattern) -%}
    '{{ pattern | replace("'", "''") }}'
{%- endmacro %}

{# A format of var `defect_patterns` as a SQL literal. #}
{% macro defect_pattern(name) -%}
    {{ pattern_literal(var('defect_patterns')[name]) }}
{%- endmacro %}

{#
    Every field's JSON kind and trimmed text as `[expression, name]` pairs for
    select_computed_once (macros/portable.sql): `<field>_kind`, and `<field>_text`, the text of a
    JSON string or number, trimmed (numbers print in their canonical decimal form), NULL for any
    other kind. The kind macros read these columns (field_kind, json_text, json_number), so
    a model computes them in a step before its defect classes. Postgres has no
    common-subexpression elimination: written out at every mention, a count's text was extracted
    and trimmed up to ten times per row, 53 times per task (bench/analysis.md, twenty-seventh
    pass). `fields`: some of the entity's fields (all of them by default).
#}
{% macro field_scalar_columns(entity, fields=none) -%}
    {%- set columns = [] -%}
    {%- for field in fields or var('fields')[entity] -%}
        {%- set json = field ~ '_json' -%}
        {%- do columns.append([json_kind(json), field ~ '_kind']) -%}
        {%- do columns.append([
            "(case when " ~ json_kind(json) ~ " in ('string', 'number') then "
            ~ trim_whitespace(json_scalar(json)) ~ " end)",
            field ~ '_text',
        ]) -%}
    {%- endfor -%}
    {{ return(columns) }}
{%- endmacro %}

{# The column field_scalar_columns computed for the JSON column `<field>_json`: `<field>_<what>`. #}
{% macro field_scalar(json, what) -%}
    {%- if not json.endswith('_json') -%}
        {{ exceptions.raise_compiler_error("a field's JSON column is named <field>_json, not " ~ json) }}
    {%- endif -%}
    {{- json[:-5] ~ '_' ~ what -}}
{%- endmacro %}

{# The JSON kind of a field's value (jsonb_typeof on Postgres), NULL when the key is absent. #}
{% macro field_kind(json) -%}
    {{ field_scalar(json, 'kind') }}
{%- endmacro %}

{# The trimmed text of a JSON string, NULL for any other kind. #}
{% macro json_text(json) -%}
    (case when {{ field_kind(json) }} = 'string' then {{ field_scalar(json, 'text') }} end)
{%- endmacro %}

{% macro is_missing(json) -%}
    ({{ json }} is null or {{ field_kind(json) }} = 'null')
{%- endmacro %}

{% macro sql_list(values) -%}
    ({%- for value in values %}'{{ value | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor -%})
{%- endmacro %}

{# The placeholder case of a kind: the trimmed, lower-cased text is one of the rule's placeholders. #}
{% macro placeholder_case(json, rule) -%}
    {%- if rule['placeholders'] %}
        when {{ lower_text(json_text(json)) }} in {{ sql_list(rule['placeholders'] | map('lower')) }} then {{ defect_class('placeholder') }}
    {%- endif -%}
{%- endmacro %}

{# The first cases of every kind of text: missing, not a string, empty, a placeholder. #}
{% macro text_cases(json, rule) -%}
        when {{ is_missing(json) }} then {{ defect_class('missing') }}
        when {{ field_kind(json) }} <> 'string' then {{ defect_class('wrong-type') }}
        when {{ json_text(json) }} = '' then {{ defect_class('empty') }}
        {{- placeholder_case(json, rule) }}
{%- endmacro %}

{# ids: a UUID string -> uuid; "", null or malformed -> NULL. #}
{% macro uuid_defect(json, rule) -%}
    case
        {{ text_cases(json, rule) }}
        when {{ regex_match(json_text(json), defect_pattern('uuid'), true, true) }} then {{ defect_class('malformed') }}
    end
{%- endmacro %}

{% macro uuid_value(json, defect, rule={}) -%}
    case when {{ defect }} is null then {{ cast_as(lower_text(json_text(json)), 'uuid') }} end
{%- endmacro %}

{# Free text (name): trimmed; a placeholder (for a name: any run of question marks) -> NULL. #}
{% macro text_defect(json, rule) -%}
    case
        {{ text_cases(json, rule) }}
        {%- if rule.get('placeholder_pattern') %}
        when {{ regex_match(json_text(json), pattern_literal(rule['placeholder_pattern'])) }} then {{ defect_class('placeholder') }}
        {%- endif %}
    end
{%- endmacro %}

{% macro text_value(json, defect, rule={}) -%}
    case when {{ defect }} is null then {{ json_text(json) }} end
{%- endmacro %}

{# email: trimmed, lower-cased, kept only when it has a valid format. #}
{% macro email_defect(json, rule) -%}
    case
        {{ text_cases(json, rule) }}
        when {{ regex_match(lower_text(json_text(json)), defect_pattern('email'), negate=true) }} then {{ defect_class('malformed') }}
    end
{%- endmacro %}

{% macro email_value(json, defect, rule={}) -%}
    case when {{ defect }} is null then {{ lower_text(json_text(json)) }} end
{%- endmacro %}

{#
    Social handles: trimmed, lower-cased, exactly one leading @. A handle outside the platform's
    rules (the rule's `pattern`: characters and length) is kept and flagged.
#}
{% macro handle_text(json) -%}
    ('@' || {{ trim_leading(lower_text(json_text(json)), '@') }})
{%- endmacro %}

{% macro handle_defect(json, rule) -%}
    case
        when {{ is_missing(json) }} then {{ defect_class('missing') }}
        when {{ field_kind(json) }} <> 'string' then {{ defect_class('wrong-type') }}
        when {{ trim_leading(json_text(json), '@') }} = '' then {{ defect_class('empty') }}
        {{- placeholder_case(json, rule) }}
        when {{ regex_match(handle_text(json), pattern_literal(rule['pattern']), negate=true) }} then {{ defect_class('breaks-platform-rules') }}
    end
{%- endmacro %}

{% macro handle_value(json, defect, rule={}) -%}
    case when {{ defect }} is null or {{ defect }} = {{ defect_class('breaks-platform-rules') }} then {{ handle_text(json) }} end
{%- endmacro %}

{#
    Timestamps: ISO-8601 -> timestamptz; without an offset the time is taken as UTC. A time
    outside the years 1-9999 once in UTC (0001-01-01T00:00:00+01:00 is 1 BC) is `out-of-range`:
    no client reads such a date as a date (Python's stops at year 1 and 9999).
#}
{% macro timestamp_defect(json, rule) -%}
    case
        {{ text_cases(json, rule) }}
        when {{ regex_match(json_text(json), defect_pattern('iso_timestamp'), true, true) }} then {{ defect_class('unparseable') }}
        when not {{ input_is_valid(json_text(json), 'timestamp') }} then {{ defect_class('unparseable') }}
        when {{ timestamp_parsed(json) }} not between {{ cast_as("'0001-01-01T00:00:00Z'", 'timestamptz') }}
            and {{ cast_as("'9999-12-31T23:59:59.999999Z'", 'timestamptz') }} then {{ defect_class('out-of-range') }}
    end
{%- endmacro %}

{% macro timestamp_value(json, defect, rule={}) -%}
    case when {{ defect }} is null then {{ timestamp_parsed(json) }} end
{%- endmacro %}

{# The time a timestamp's text says, with its offset, or taken as UTC without one. #}
{% macro timestamp_parsed(json) -%}
    case
        when {{ regex_match(json_text(json), defect_pattern('iso_offset'), true) }} then {{ cast_as(json_text(json), 'timestamptz') }}
        else {{ utc_timestamp(json_text(json)) }}
    end
{%- endmacro %}

{#
    Labels (brand, platform): trimmed text; a number (12345, or a string of digits) -> NULL.
    With `accepted`, other values are kept (case-folded) and flagged as unknown.
#}
{% macro label_defect(json, rule) -%}
    case
        when {{ is_missing(json) }} then {{ defect_class('missing') }}
        when {{ field_kind(json) }} = 'number' then {{ defect_class('number') }}
        when {{ field_kind(json) }} <> 'string' then {{ defect_class('wrong-type') }}
        when {{ json_text(json) }} = '' then {{ defect_class('empty') }}
        {{- placeholder_case(json, rule) }}
        when {{ regex_match(json_text(json), defect_pattern('label_number')) }} then {{ defect_class('number') }}
        {%- if rule.get('accepted') %}
        when {{ lower_text(json_text(json)) }} not in {{ sql_list(rule['accepted']) }} then {{ defect_class('unknown-value') }}
        {%- endif %}
    end
{%- endmacro %}

{# A label's value; kept as written, or case-folded for a label with accepted values. #}
{% macro label_value(json, defect, rule={}) -%}
    case
        when {{ defect }} is null or {{ defect }} = {{ defect_class('unknown-value') }}
        then {% if rule.get('accepted') %}{{ lower_text(json_text(json)) }}{% else %}{{ json_text(json) }}{% endif %}
    end
{%- endmacro %}

{# URLs: an http(s) URL with a host name (or IPv4 address), else NULL. #}
{% macro url_defect(json, rule) -%}
    case
        {{ text_cases(json, rule) }}
        when {{ regex_match(json_text(json), defect_pattern('url'), true, true) }} then {{ defect_class('malformed') }}
    end
{%- endmacro %}

{% macro url_value(json, defect, rule={}) -%}
    case when {{ defect }} is null then {{ json_text(json) }} end
{%- endmacro %}

{#
    Numbers: a JSON number or a decimal string. Shared first part of count_defect and
    amount_defect: the classes that make a value unusable as a number.
#}
{% macro number_defect_cases(json, rule) -%}
        when {{ is_missing(json) }} then {{ defect_class('missing') }}
        when {{ field_kind(json) }} = 'string' and {{ json_text(json) }} = '' then {{ defect_class('empty') }}
        {%- if rule['placeholders'] %}
        when {{ field_kind(json) }} = 'string' and {{ lower_text(json_text(json)) }} in {{ sql_list(rule['placeholders'] | map('lower')) }} then {{ defect_class('placeholder') }}
        {%- endif %}
        when {{ field_kind(json) }} = 'string' and {{ regex_match(lower_text(json_text(json)), defect_pattern('not_a_number')) }} then {{ defect_class('not-a-number') }}
        when {{ field_kind(json) }} not in ('number', 'string') then {{ defect_class('wrong-type') }}
        when {{ field_kind(json) }} = 'string' and {{ regex_match(json_text(json), defect_pattern('decimal'), true, true) }} then {{ defect_class('non-numeric') }}
        when {{ field_kind(json) }} = 'string' and not {{ input_is_valid(json_text(json), 'numeric') }} then {{ defect_class('out-of-range') }}
        {{- unrepresentable_number_case(json) }}
{%- endmacro %}

{# The value of a JSON number or decimal string as numeric (only once number_defect_cases passed). #}
{% macro json_number(json) -%}
    {{ cast_as(field_scalar(json, 'text'), 'numeric') }}
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
{% macro count_defect(json, rule) -%}
    case
        {{ number_defect_cases(json, rule) }}
        when {{ json_number(json) }} < 0 then {{ defect_class('negative') }}
        when {{ json_number(json) }} <> {{ truncate_number(json_number(json)) }} then {{ defect_class('fractional') }}
        when {{ json_number(json) }} not between {{ rule['range']['min'] }} and {{ rule['range']['max'] }} then {{ defect_class('out-of-range') }}
    end
{%- endmacro %}

{% macro count_value(json, defect, rule={}) -%}
    case when {{ defect }} is null then cast({{ json_number(json) }} as bigint) end
{%- endmacro %}

{#
    Amounts (total_sales_attributed): money, rounded to cents (half away from zero) as
    numeric(18, 2). Outside the measure's range -> `out-of-range`, NULL; a negative amount within
    it is kept and flagged `negative`. The classes judge the delivered value, before rounding.
#}
{% macro amount_defect(json, rule) -%}
    case
        {{ number_defect_cases(json, rule) }}
        when {{ json_number(json) }} not between {{ rule['range']['min'] }} and {{ rule['range']['max'] }} then {{ defect_class('out-of-range') }}
        when {{ json_number(json) }} < 0 then {{ defect_class('negative') }}
    end
{%- endmacro %}

{% macro amount_value(json, defect, rule={}) -%}
    {{ cast_as(
        "case when " ~ defect ~ " is null or " ~ defect ~ " = " ~ defect_class('negative')
        ~ " then round(" ~ json_number(json) ~ ", 2) end",
        'numeric(18, 2)') }}
{%- endmacro %}

{#
    Lists (advocacy_programs, tasks_completed): an array, possibly empty; the value is its length,
    NULL when the list is missing, null or not a list (how many elements it has is unknown; its
    defect says why), never 0: 0 is an empty list.
#}
{% macro list_defect(json, rule) -%}
    case
        when {{ is_missing(json) }} then {{ defect_class('missing') }}
        when {{ field_kind(json) }} <> 'array' then {{ defect_class('wrong-type') }}
    end
{%- endmacro %}

{% macro list_value(json, defect, rule={}) -%}
    case when {{ field_kind(json) }} = 'array' then {{ json_array_length(json) }} end
{%- endmacro %}

{#
    The brand name brand_id derives from: trimmed, NFKC-normalised, inner whitespace collapsed and
    case-folded (macros/text.sql: the same on every database and collation).
#}
{% macro normalised_brand(brand) -%}
    {{ fold_text(brand) }}
{%- endmacro %}
