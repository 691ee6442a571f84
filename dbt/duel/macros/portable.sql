{#
    Portable SQL: every Postgres-specific construct the models use, behind `adapter.dispatch`, so
    the same models build on Postgres and on Spark (dbt-spark; JSON as Spark 4's VARIANT).

    `default__` bodies are the Postgres SQL the models write today, character for character up to
    whitespace, so moving a model onto these macros changes nothing on Postgres
    (tests/spark/test_portable_macros.py renders each one and compares). `spark__` bodies give the
    same results on the same inputs, compared value for value on Postgres and a local Spark session
    by the same test, which also pins the few documented differences:
    - JSON numbers: Spark's VARIANT keeps a number's value, not its text (`1.50` reads back as
      `1.5`, `1e2` as `100.0`), so json_scalar of a number is equal as a number, not as text.
    - fold_text on Spark is upper-then-lower case mapping (ß spelled ss) without NFKC (Spark has
      no Unicode normalisation function): `Straße`/`STRASSE`, `NESTLÉ`/`Nestlé`, `ﬁne`/`fine` and
      the full-width forms of ASCII (`ＡＢ`/`ab`, mapped one by one) fold alike, but other
      compatibility forms (full-width katakana, circled or superscript letters, ...) and a
      combining accent against the precomposed letter do not.
    - numeric without a precision is decimal(38, 18) on Spark: a decimal string beyond 10^20 is
      out of range there (Postgres' numeric holds it; the measure ranges stop at 10^12 anyway).
    - timestamps: Spark's session time zone must be UTC (the `spark` profile sets it).

    Arguments are SQL expressions (text), except where a macro says it takes a name or a
    Python value. Macros named after existing ones (lower_text, fold_text in macros/text.sql) are
    reached as `adapter.dispatch('lower_text', 'duel')(...)` until text.sql calls them itself.
#}

{# --- types ----------------------------------------------------------------------------------- #}

{#
    The type to write for a Postgres type name on this target: `data_type('timestamptz')` is
    timestamptz on Postgres, timestamp on Spark. Contracts keep their Postgres data_types in the
    yml; on Spark, spark__get_empty_schema_sql (below) maps them through this macro.
#}
{% macro data_type(pg_type) -%}
    {{ return(adapter.dispatch('data_type', 'duel')(pg_type)) }}
{%- endmacro %}

{% macro default__data_type(pg_type) -%}
    {{ return(pg_type) }}
{%- endmacro %}

{% macro spark__data_type(pg_type) -%}
    {%- set name = pg_type | trim | lower -%}
    {%- set simple = {
        'text': 'string', 'varchar': 'string', 'character varying': 'string', 'uuid': 'string',
        'citext': 'string', 'jsonb': 'variant', 'json': 'variant',
        'timestamptz': 'timestamp', 'timestamp with time zone': 'timestamp',
        'timestamp': 'timestamp_ntz', 'timestamp without time zone': 'timestamp_ntz',
        'integer': 'int', 'int4': 'int', 'int': 'int', 'bigint': 'bigint', 'int8': 'bigint',
        'smallint': 'smallint', 'int2': 'smallint', 'boolean': 'boolean', 'bool': 'boolean',
        'date': 'date', 'double precision': 'double', 'float8': 'double', 'real': 'float',
        'numeric': 'decimal(38, 18)', 'decimal': 'decimal(38, 18)', 'bytea': 'binary',
    } -%}
    {%- if name in simple -%}
        {{ return(simple[name]) }}
    {%- elif name.startswith('numeric(') or name.startswith('decimal(') -%}
        {{ return('decimal(' ~ name.split('(', 1)[1]) }}
    {%- elif name.endswith('[]') -%}
        {{ return('array<' ~ spark__data_type(name[:-2]) ~ '>') }}
    {%- else -%}
        {{ return(name) }}
    {%- endif -%}
{%- endmacro %}

{# `cast(expr as type)`, the type given as its Postgres name. #}
{% macro cast_as(expression, pg_type) -%}
    {{ return(adapter.dispatch('cast_as', 'duel')(expression, pg_type)) }}
{%- endmacro %}

{% macro default__cast_as(expression, pg_type) -%}
    cast({{ expression }} as {{ pg_type }})
{%- endmacro %}

{% macro spark__cast_as(expression, pg_type) -%}
    cast({{ expression }} as {{ spark__data_type(pg_type) }})
{%- endmacro %}

{#
    The type for arithmetic that must keep every digit (engagement_by_platform's rate interval:
    products of sums of counts near 10^12, squared): Postgres' numeric, exact and unbounded.
    Spark's decimal stops at 38 digits, so double there, exact to about 16 significant digits
    (far finer than the 6 decimals kept, at any real rate).
#}
{% macro exact_number_type() -%}
    {{ return(adapter.dispatch('exact_number_type', 'duel')()) }}
{%- endmacro %}

{% macro default__exact_number_type() -%}
    {{ return('numeric') }}
{%- endmacro %}

{% macro spark__exact_number_type() -%}
    {{ return('double') }}
{%- endmacro %}

{# Postgres' `expr::type` shorthand (known_share's `count(...)::numeric`). #}
{% macro typecast(expression, pg_type) -%}
    {{ return(adapter.dispatch('typecast', 'duel')(expression, pg_type)) }}
{%- endmacro %}

{% macro default__typecast(expression, pg_type) -%}
    {{ expression }}::{{ pg_type }}
{%- endmacro %}

{% macro spark__typecast(expression, pg_type) -%}
    cast({{ expression }} as {{ spark__data_type(pg_type) }})
{%- endmacro %}

{#
    Contracts on Spark: the yml data_types are Postgres names; the schema the contract is checked
    against is built from their Spark equivalents (dbt's own macro otherwise).
#}
{% macro spark__get_empty_schema_sql(columns) -%}
    {%- set mapped = {} -%}
    {%- for name, column in columns.items() -%}
        {%- set copy = column.copy() -%}
        {%- if column.get('data_type') is not none -%}
            {%- do copy.update({'data_type': spark__data_type(column['data_type'])}) -%}
        {%- endif -%}
        {%- do mapped.update({name: copy}) -%}
    {%- endfor -%}
    {{ return(dbt.default__get_empty_schema_sql(mapped)) }}
{%- endmacro %}

{# `'value'::type` for a uuid literal (unknown_brand_id); Spark keeps uuids as strings. #}
{% macro uuid_literal(value) -%}
    {{ return(adapter.dispatch('uuid_literal', 'duel')(value)) }}
{%- endmacro %}

{% macro default__uuid_literal(value) -%}
    '{{ value }}'::uuid
{%- endmacro %}

{% macro spark__uuid_literal(value) -%}
    '{{ value }}'
{%- endmacro %}

{# md5 of a text as a uuid (surrogate_key): the same 32 hex digits, in uuid form on both. #}
{% macro md5_uuid(text) -%}
    {{ return(adapter.dispatch('md5_uuid', 'duel')(text)) }}
{%- endmacro %}

{% macro default__md5_uuid(text) -%}
    md5({{ text }})::uuid
{%- endmacro %}

{% macro spark__md5_uuid(text) -%}
    regexp_replace(md5({{ text }}), '^(.{8})(.{4})(.{4})(.{4})(.{12})$', '$1-$2-$3-$4-$5')
{%- endmacro %}

{#
    A SQL string literal holding `value` (a Python string) exactly: Postgres' standard strings
    keep backslashes; Spark's literals treat them as escapes, so they are doubled there.
#}
{% macro text_literal(value) -%}
    {{ return(adapter.dispatch('text_literal', 'duel')(value)) }}
{%- endmacro %}

{% macro default__text_literal(value) -%}
    '{{ value | replace("'", "''") }}'
{%- endmacro %}

{% macro spark__text_literal(value) -%}
    '{{ value | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}

{# --- JSON ------------------------------------------------------------------------------------ #}

{# A JSON value from its text (raw documents are stored as text on Spark, jsonb on Postgres). #}
{% macro json_parse(text) -%}
    {{ return(adapter.dispatch('json_parse', 'duel')(text)) }}
{%- endmacro %}

{% macro default__json_parse(text) -%}
    cast({{ text }} as jsonb)
{%- endmacro %}

{% macro spark__json_parse(text) -%}
    parse_json({{ text }})
{%- endmacro %}

{# A top-level field of a JSON object (`key`: a name): NULL when absent, JSON null when null. #}
{% macro json_get(json, key) -%}
    {{ return(adapter.dispatch('json_get', 'duel')(json, key)) }}
{%- endmacro %}

{% macro default__json_get(json, key) -%}
    {{ json }} -> '{{ key }}'
{%- endmacro %}

{% macro spark__json_get(json, key) -%}
    variant_get({{ json }}, '$.{{ key }}')
{%- endmacro %}

{#
    FROM-clause step: the top-level `fields` of the JSON object `json`, each a JSON value in a
    column of `alias`, read with json_field (NULL when absent or JSON null, and every field NULL
    when `json` is not an object). The rules classify a JSON null as missing, like an absent
    field, so either NULL is the same to them. On Postgres one jsonb_to_record per row: the
    object is read once for all its fields, where `->` per field reads it again at every mention
    of every field (the rules name a field 5-9 times). int_users' select at 1M users, without
    parallel workers, alternating: 51.3 / 53.6 s with `->`, 43.7 / 43.8 s with this, the same
    rows (bench/analysis.md, eleventh pass). A function in the FROM clause is not flattened into
    the outer query, and the outer query's filters on the other tables still reach their scans.
    Spark: nothing (json_field reads each field with json_get; its optimiser eliminates common
    subexpressions).
#}
{% macro json_fields_from(json, fields, alias) -%}
    {{ return(adapter.dispatch('json_fields_from', 'duel')(json, fields, alias)) }}
{%- endmacro %}

{% macro default__json_fields_from(json, fields, alias) -%}
    left join lateral jsonb_to_record(
        case when jsonb_typeof({{ json }}) = 'object' then {{ json }} end
    ) as {{ alias }} (
        {%- for field in fields %}{{ adapter.quote(field) }} jsonb{{ ', ' if not loop.last }}{% endfor -%}
    ) on true
{%- endmacro %}

{% macro spark__json_fields_from(json, fields, alias) -%}
{%- endmacro %}

{# A field read by json_fields_from(json, ..., alias): its JSON value, NULL when absent or null. #}
{% macro json_field(alias, json, field) -%}
    {{ return(adapter.dispatch('json_field', 'duel')(alias, json, field)) }}
{%- endmacro %}

{% macro default__json_field(alias, json, field) -%}
    {{ alias }}.{{ adapter.quote(field) }}
{%- endmacro %}

{% macro spark__json_field(alias, json, field) -%}
    {{ json_get(json, field) }}
{%- endmacro %}

{# jsonb_typeof: object, array, string, number, boolean or null; NULL for SQL NULL. #}
{% macro json_kind(json) -%}
    {{ return(adapter.dispatch('json_kind', 'duel')(json)) }}
{%- endmacro %}

{% macro default__json_kind(json) -%}
    jsonb_typeof({{ json }})
{%- endmacro %}

{% macro spark__json_kind(json) -%}
    (case
        when {{ json }} is null then null
        when schema_of_variant({{ json }}) = 'VOID' then 'null'
        when schema_of_variant({{ json }}) = 'STRING' then 'string'
        when schema_of_variant({{ json }}) = 'BOOLEAN' then 'boolean'
        when schema_of_variant({{ json }}) like 'OBJECT%' then 'object'
        when schema_of_variant({{ json }}) like 'ARRAY%' then 'array'
        else 'number'
    end)
{%- endmacro %}

{# The text of a JSON scalar (`#>> '{}'`): a string unquoted, a number or boolean printed. #}
{% macro json_scalar(json) -%}
    {{ return(adapter.dispatch('json_scalar', 'duel')(json)) }}
{%- endmacro %}

{% macro default__json_scalar(json) -%}
    {{ json }} #>> '{}'
{%- endmacro %}

{% macro spark__json_scalar(json) -%}
    variant_get({{ json }}, '$', 'string')
{%- endmacro %}

{# The number of elements of a JSON array (only called on arrays). #}
{% macro json_array_length(json) -%}
    {{ return(adapter.dispatch('json_array_length', 'duel')(json)) }}
{%- endmacro %}

{% macro default__json_array_length(json) -%}
    jsonb_array_length({{ json }})
{%- endmacro %}

{% macro spark__json_array_length(json) -%}
    array_size(try_variant_get({{ json }}, '$', 'array<variant>'))
{%- endmacro %}

{#
    FROM-clause step: one row per element of the JSON array `json` (none when it is not an array),
    as `alias.value_column` with its 1-based position `alias.position_column` (bigint). What the
    models write as `cross join lateral {{ array_elements(json) }} with ordinality as alias (...)`.
#}
{% macro unnest_json_array(json, alias, value_column, position_column) -%}
    {{ return(adapter.dispatch('unnest_json_array', 'duel')(json, alias, value_column, position_column)) }}
{%- endmacro %}

{% macro default__unnest_json_array(json, alias, value_column, position_column) -%}
    cross join lateral jsonb_array_elements(case when jsonb_typeof({{ json }}) = 'array' then {{ json }} else '[]'::jsonb end)
        with ordinality as {{ alias }} ({{ value_column }}, {{ position_column }})
{%- endmacro %}

{% macro spark__unnest_json_array(json, alias, value_column, position_column) -%}
    cross join lateral (
        select cast(pos + 1 as bigint) as {{ position_column }}, value as {{ value_column }}
        from variant_explode(case when {{ spark__json_kind(json) }} = 'array' then {{ json }} end)
    ) as {{ alias }}
{%- endmacro %}

{#
    FROM-clause step: the rows of `rows` (a list of lists of SQL expressions, which may refer to
    the preceding tables) as `alias (columns...)`: data_quality's one row per field and defect.
#}
{% macro lateral_values(rows, alias, columns) -%}
    {{ return(adapter.dispatch('lateral_values', 'duel')(rows, alias, columns)) }}
{%- endmacro %}

{% macro default__lateral_values(rows, alias, columns) -%}
    cross join lateral (
        values
        {%- for row in rows %}
            ({{ row | join(', ') }}){{ "," if not loop.last }}
        {%- endfor %}
    ) as {{ alias }} ({{ columns | join(', ') }})
{%- endmacro %}

{% macro spark__lateral_values(rows, alias, columns) -%}
    cross join lateral stack(
        {{ rows | length }},
        {%- for row in rows %}
        {{ row | join(', ') }}{{ "," if not loop.last }}
        {%- endfor %}
    ) as {{ alias }} ({{ columns | join(', ') }})
{%- endmacro %}

{# --- text ------------------------------------------------------------------------------------ #}

{#
    Whitespace trimmed from both ends: Unicode's White_Space characters (space, tab, newline,
    carriage return, form feed, vertical tab, next line, no-break space, the en/em/thin/...
    spaces, line and paragraph separators, the ideographic space) and the invisible ones
    that stand in for a space (zero width space, word joiner, zero width no-break space / byte
    order mark, Mongolian vowel separator), so a value of only such characters is empty and
    `Acme\u00a0` is `Acme`. Python: duel.defects.trimmed (the same characters).
#}
{% macro trim_whitespace(text) -%}
    {{ return(adapter.dispatch('trim_whitespace', 'duel')(text)) }}
{%- endmacro %}

{# The characters, as \uXXXX escapes both engines' string literals read (Postgres' in e''). #}
{% macro whitespace_escapes() -%}
    {{ return('\\u0020\\u0009\\u000a\\u000d\\u000c\\u000b\\u0085\\u00a0\\u1680\\u2000\\u2001\\u2002\\u2003\\u2004\\u2005\\u2006\\u2007\\u2008\\u2009\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\u180e\\u200b\\u2060\\ufeff\\u00ad') }}
{%- endmacro %}

{% macro default__trim_whitespace(text) -%}
    btrim({{ text }}, e'{{ whitespace_escapes() }}')
{%- endmacro %}

{% macro spark__trim_whitespace(text) -%}
    btrim({{ text }}, '{{ whitespace_escapes() }}')
{%- endmacro %}

{# Leading characters removed (`characters`: a Python string, e.g. '@'). #}
{% macro trim_leading(text, characters) -%}
    {{ return(adapter.dispatch('trim_leading', 'duel')(text, characters)) }}
{%- endmacro %}

{% macro default__trim_leading(text, characters) -%}
    ltrim({{ text }}, '{{ characters }}')
{%- endmacro %}

{% macro spark__trim_leading(text, characters) -%}
    trim(leading '{{ characters }}' from {{ text }})
{%- endmacro %}

{% macro text_starts_with(text, prefix) -%}
    {{ return(adapter.dispatch('text_starts_with', 'duel')(text, prefix)) }}
{%- endmacro %}

{% macro default__text_starts_with(text, prefix) -%}
    starts_with({{ text }}, {{ prefix }})
{%- endmacro %}

{% macro spark__text_starts_with(text, prefix) -%}
    startswith({{ text }}, {{ prefix }})
{%- endmacro %}

{#
    Regular expression match, POSIX on Postgres (`~`, `~*`, `!~`, `!~*`), Java on Spark (`rlike`).
    `pattern` is a SQL string literal (the *_pattern() macros) or an expression; the patterns the
    models use mean the same in both dialects once `[:space:]` is `\s` and backslashes are kept
    (a raw literal on Spark, whose ordinary literals drop unknown escapes).
#}
{% macro regex_match(text, pattern, case_insensitive=false, negate=false) -%}
    {{ return(adapter.dispatch('regex_match', 'duel')(text, pattern, case_insensitive, negate)) }}
{%- endmacro %}

{% macro default__regex_match(text, pattern, case_insensitive=false, negate=false) -%}
    {{ text }} {{ '!' if negate }}~{{ '*' if case_insensitive }} {{ pattern }}
{%- endmacro %}

{% macro spark__regex_match(text, pattern, case_insensitive=false, negate=false) -%}
    {%- set literal = pattern | trim -%}
    {%- if literal.startswith("'") and literal.endswith("'") -%}
        {%- set body = literal[1:-1] | replace('[:space:]', '\\s') -%}
        {%- set spark_pattern = "r'" ~ ('(?i)' if case_insensitive else '') ~ body ~ "'" -%}
    {%- elif case_insensitive -%}
        {%- set spark_pattern = "concat('(?i)', " ~ pattern ~ ")" -%}
    {%- else -%}
        {%- set spark_pattern = pattern -%}
    {%- endif -%}
    {{ 'not ' if negate }}({{ text }} rlike {{ spark_pattern }})
{%- endmacro %}

{# Every match of `pattern` (a SQL literal) replaced (`regexp_replace(..., 'g')`). #}
{% macro regex_replace_all(text, pattern, replacement) -%}
    {{ return(adapter.dispatch('regex_replace_all', 'duel')(text, pattern, replacement)) }}
{%- endmacro %}

{% macro default__regex_replace_all(text, pattern, replacement) -%}
    regexp_replace({{ text }}, {{ pattern }}, {{ replacement }}, 'g')
{%- endmacro %}

{% macro spark__regex_replace_all(text, pattern, replacement) -%}
    regexp_replace({{ text }}, {{ pattern }}, {{ replacement }})
{%- endmacro %}

{# Whether a text is a valid value of a type (pg_input_is_valid), the type a Postgres name. #}
{% macro input_is_valid(text, pg_type) -%}
    {{ return(adapter.dispatch('input_is_valid', 'duel')(text, pg_type)) }}
{%- endmacro %}

{% macro default__input_is_valid(text, pg_type) -%}
    pg_input_is_valid({{ text }}, '{{ pg_type }}')
{%- endmacro %}

{% macro spark__input_is_valid(text, pg_type) -%}
    {#- Postgres' timestamp input accepts (and ignores) an offset; Spark's timestamp_ntz does not -#}
    {%- set spark_type = 'timestamp' if pg_type == 'timestamp' else spark__data_type(pg_type) -%}
    (try_cast({{ text }} as {{ spark_type }}) is not null)
{%- endmacro %}

{#
    Text lower-cased with Unicode's case mapping, whatever the database's collation
    (macros/text.sql's lower_text): Postgres' builtin provider; Spark's lower() is Unicode already.
#}
{% macro default__lower_text(text) -%}
    lower(({{ text }}) collate "pg_c_utf8")
{%- endmacro %}

{% macro spark__lower_text(text) -%}
    lower({{ text }})
{%- endmacro %}

{# macros/text.sql's fold_text; on Spark without NFKC (see the header). #}
{% macro default__fold_text(text) -%}
    casefold(regexp_replace(normalize(regexp_replace(({{ text }}), '[\u00ad\u200b\u2060\ufeff]', '', 'g'), nfkc), '[ \t\n\r\f\v]+', ' ', 'g') collate "pg_unicode_fast")
{%- endmacro %}

{# Spark's upper and lower map one letter to one letter: casefold's ß -> ss is spelled out; the
   spaces NFKC makes a plain space (no-break, en to hair, narrow, medium, ideographic) are one;
   the full-width forms of ASCII (U+FF01-FF5E: `ＡＢ`, `Ｎ／Ａ`), which NFKC makes ASCII, are
   translated to it (spark_full_width below); the invisible characters are dropped as on
   Postgres. #}
{% macro spark__fold_text(text) -%}
    lower(upper(replace(replace(regexp_replace(regexp_replace({{ spark_full_width(text) }}, '[\u00ad\u200b\u2060\ufeff]', ''), '[ \t\n\r\u000c\u000b\u00a0\u2000-\u200a\u202f\u205f\u3000]+', ' '), 'ß', 'ss'), 'ẞ', 'ss')))
{%- endmacro %}

{# `text` with each full-width form of an ASCII character (U+FF01-FF5E) as that character
   (U+0021-007E), as NFKC maps them; Spark SQL literals, so `'` and `\` are escaped. #}
{% macro spark_full_width(text) -%}
    translate({{ text }}, '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～', '!"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~')
{%- endmacro %}

{# --- times and aggregates --------------------------------------------------------------------- #}

{# A text without an offset read as a UTC time (`cast(x as timestamp) at time zone 'UTC'`). #}
{% macro utc_timestamp(text) -%}
    {{ return(adapter.dispatch('utc_timestamp', 'duel')(text)) }}
{%- endmacro %}

{% macro default__utc_timestamp(text) -%}
    cast({{ text }} as timestamp) at time zone 'UTC'
{%- endmacro %}

{% macro spark__utc_timestamp(text) -%}
    cast(cast({{ text }} as timestamp_ntz) as timestamp)
{%- endmacro %}

{# The first day of the UTC month of a timestamptz, as a date (join_month). #}
{% macro utc_month(timestamp) -%}
    {{ return(adapter.dispatch('utc_month', 'duel')(timestamp)) }}
{%- endmacro %}

{% macro default__utc_month(timestamp) -%}
    cast(date_trunc('month', {{ timestamp }} at time zone 'UTC') as date)
{%- endmacro %}

{% macro spark__utc_month(timestamp) -%}
    cast(date_trunc('month', {{ timestamp }}) as date)
{%- endmacro %}

{# Seconds from one timestamptz to a later one, as numeric (ingest_batches' duration). #}
{% macro seconds_between(started, finished) -%}
    {{ return(adapter.dispatch('seconds_between', 'duel')(started, finished)) }}
{%- endmacro %}

{% macro default__seconds_between(started, finished) -%}
    cast(extract(epoch from {{ finished }} - {{ started }}) as numeric)
{%- endmacro %}

{% macro spark__seconds_between(started, finished) -%}
    cast((unix_micros({{ finished }}) - unix_micros({{ started }})) / 1000000 as decimal(38, 6))
{%- endmacro %}

{# Aggregate: the value of the first row in `order_by` order (`(array_agg(v order by ...))[1]`). #}
{% macro first_by(value, order_by) -%}
    {{ return(adapter.dispatch('first_by', 'duel')(value, order_by)) }}
{%- endmacro %}

{% macro default__first_by(value, order_by) -%}
    (array_agg({{ value }} order by {{ order_by | join(', ') }}))[1]
{%- endmacro %}

{% macro spark__first_by(value, order_by) -%}
    min_by({{ value }}, struct({{ order_by | join(', ') }}))
{%- endmacro %}

{#
    A whole SELECT: every column of `relation` and the computed `columns` (a list of
    [expression, name] pairs, which may refer to relation's columns), each expression evaluated
    once per row. Postgres has no common-subexpression elimination: a column computed in one CTE
    and named again in a later one is computed again at every mention (the defect classes are
    named by the values, by has_no_defects and by base's is_clean: 2-3x the work of the
    classification, measured on 100k users, programs and tasks). Each expression is the one
    element of an array unnested in the FROM clause (`unnest(array[a], array[b], ...)`, one
    row): a function's arguments are evaluated once per row and never flattened into the
    outer query, and unlike a subquery fenced with `offset 0` it does not keep the query from
    running in parallel workers. Filters on relation's columns still reach relation's scan (an
    incremental build looks up only its documents). Spark's optimiser eliminates common
    subexpressions itself: a plain projection.
#}
{% macro select_computed_once(relation, alias, columns) -%}
    {{ return(adapter.dispatch('select_computed_once', 'duel')(relation, alias, columns)) }}
{%- endmacro %}

{% macro default__select_computed_once(relation, alias, columns) -%}
    select
        {{ relation }}.*,
        {{ alias }}.*
    from {{ relation }}
    cross join lateral unnest(
        {%- for expression, name in columns %}
        array[{{ expression }}]{{ ',' if not loop.last }}
        {%- endfor %}
    ) as {{ alias }} (
        {%- for expression, name in columns %}{{ name }}{{ ', ' if not loop.last }}{% endfor -%}
    )
{%- endmacro %}

{% macro spark__select_computed_once(relation, alias, columns) -%}
    select
        {{ relation }}.*,
        {%- for expression, name in columns %}
        {{ expression }} as {{ name }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ relation }}
{%- endmacro %}

{#
    FROM-clause step: the rows of `relation` whose columns equal the preceding tables' expressions
    (`keys`: a list of [column, expression] pairs), as `alias`. `fence` (a SQL clause, `limit 1`
    or `offset 0`) makes Postgres plan it as one index lookup per outer row (`cross join lateral`),
    so an incremental build reads only the rows it needs, but keeps the query on one process;
    with `''` it is a plain join (a build that reads every row). Spark has no such plan and joins.
#}
{% macro lateral_lookup(relation, alias, keys, fence) -%}
    {{ return(adapter.dispatch('lateral_lookup', 'duel')(relation, alias, keys, fence)) }}
{%- endmacro %}

{% macro default__lateral_lookup(relation, alias, keys, fence) -%}
    cross join lateral (
        select * from {{ relation }}
        where
        {%- for column, expression in keys %}
            {{ relation }}.{{ column }} = {{ expression }}{{ ' and' if not loop.last }}
        {%- endfor %}
        {{ fence }}
    ) as {{ alias }}
{%- endmacro %}

{% macro spark__lateral_lookup(relation, alias, keys, fence) -%}
    inner join {{ relation }} as {{ alias }}
        on
        {%- for column, expression in keys %}
            {{ alias }}.{{ column }} = {{ expression }}{{ ' and' if not loop.last }}
        {%- endfor %}
{%- endmacro %}

{#
    SELECT DISTINCT ON, the first row per `keys` (a list of expressions) in the order `order_by`
    (the whole ordering, the keys first; it must be total): a query written as
    `select {{ distinct_on(keys, order_by) }} columns from ... where ... {{ distinct_on_end(keys, order_by) }}`
    is `select distinct on (keys) columns ... order by order_by` on Postgres. Spark has no
    DISTINCT ON: there the query is wrapped, row_number() picks the same first row, and the
    result has one more column, `distinct_on_row` (always 1).
#}
{% macro distinct_on(keys, order_by) -%}
    {{ return(adapter.dispatch('distinct_on', 'duel')(keys, order_by)) }}
{%- endmacro %}

{% macro default__distinct_on(keys, order_by) -%}
    distinct on ({{ keys | join(', ') }})
{%- endmacro %}

{% macro spark__distinct_on(keys, order_by) -%}
    * from (
        select
            row_number() over (partition by {{ keys | join(', ') }} order by {{ order_by | join(', ') }}) as distinct_on_row,
{%- endmacro %}

{% macro distinct_on_end(keys, order_by) -%}
    {{ return(adapter.dispatch('distinct_on_end', 'duel')(keys, order_by)) }}
{%- endmacro %}

{% macro default__distinct_on_end(keys, order_by) -%}
    order by {{ order_by | join(', ') }}
{%- endmacro %}

{% macro spark__distinct_on_end(keys, order_by) -%}
    ) as distinct_on_rows
    where distinct_on_row = 1
{%- endmacro %}

{#
    `expression` is one of the values `query` (a one-column SELECT) gives, the query run first:
    `= any(array(query))` makes Postgres compute the list before it plans the lookups (base's
    incremental filter, measured there); Spark's `in (query)` is planned as a semi-join anyway.
#}
{% macro in_computed_list(expression, query) -%}
    {{ return(adapter.dispatch('in_computed_list', 'duel')(expression, query)) }}
{%- endmacro %}

{% macro default__in_computed_list(expression, query) -%}
    {{ expression }} = any(array({{ query }}))
{%- endmacro %}

{% macro spark__in_computed_list(expression, query) -%}
    {{ expression }} in ({{ query }})
{%- endmacro %}

{# Integer division, the fraction dropped (Postgres' `/` on integers; Spark's `/` gives a fraction). #}
{% macro integer_divide(dividend, divisor) -%}
    {{ return(adapter.dispatch('integer_divide', 'duel')(dividend, divisor)) }}
{%- endmacro %}

{% macro default__integer_divide(dividend, divisor) -%}
    ({{ dividend }}) / {{ divisor }}
{%- endmacro %}

{% macro spark__integer_divide(dividend, divisor) -%}
    ({{ dividend }}) div {{ divisor }}
{%- endmacro %}

{# A number with its fraction dropped, toward zero (Postgres' trunc(numeric); Spark's trunc is for dates). #}
{% macro truncate_number(number) -%}
    {{ return(adapter.dispatch('truncate_number', 'duel')(number)) }}
{%- endmacro %}

{% macro default__truncate_number(number) -%}
    trunc({{ number }})
{%- endmacro %}

{% macro spark__truncate_number(number) -%}
    (case when {{ number }} < 0 then ceil({{ number }}) else floor({{ number }}) end)
{%- endmacro %}

{#
    Unit-test fixtures on Spark: a JSON value is given as its text, which a cast would keep as a
    VARIANT string; parse_json reads it as the JSON it spells (dbt-spark's cast otherwise).
#}
{% macro spark__safe_cast(field, type) -%}
    {%- if type | trim | lower == 'variant' -%}
        parse_json({{ field }})
    {%- else -%}
        {{ dbt.spark__safe_cast(field, type) }}
    {%- endif -%}
{%- endmacro %}

{#
    number_defect_cases' last case: a JSON number the database's `numeric` cannot hold is
    out-of-range. Postgres' numeric holds every number jsonb does (no case); Spark's numeric is
    decimal(38, 18), so a number from 10^20 up (1e40, 1e400) casts to NULL there.
#}
{% macro unrepresentable_number_case(json) -%}
    {{ return(adapter.dispatch('unrepresentable_number_case', 'duel')(json)) }}
{%- endmacro %}

{% macro default__unrepresentable_number_case(json) -%}
{%- endmacro %}

{% macro spark__unrepresentable_number_case(json) %}
        when {{ json_number(json) }} is null then {{ defect_class('out-of-range') }}
{%- endmacro %}

{#
    Exact medians by group: one row per `key` of `rows` (a relation or CTE name) with the median
    of `value` as `median_as` (the middle value, or the mean of the two middle values, as a
    numeric: not percentile_cont's float), and each of `aggregates` ([[expression, name], ...],
    aggregates over the group's rows). `size` is a column of `rows` holding each group's row
    count, the same on every row of a group (the positions of the middle values come from it).
    On Postgres the middle values are picked by percentile_disc, which sorts each group's values
    alone; at the fraction (k - 0.5) / n it gives the k-th value exactly, whatever the float's
    rounding (ceil(k - 0.5 +- a few ulps) = k). A window that numbers every row (Spark's form)
    sorts the whole rows: sales_outliers' two medians at 1M programs, 10.3 s that way, 8.6 s
    this way (same rows; bench/analysis.md, twenty-first pass).
#}
{% macro group_medians(rows, key, size, value, median_as='median', aggregates=[]) -%}
    {{ return(adapter.dispatch('group_medians', 'duel')(rows, key, size, value, median_as, aggregates)) }}
{%- endmacro %}

{% macro default__group_medians(rows, key, size, value, median_as, aggregates) -%}
    select
        {{ key }},
        (middle[1] + middle[2]) / 2 as {{ median_as }}
        {%- for expression, name in aggregates %},
        {{ name }}
        {%- endfor %}
    from (
        select
            {{ key }},
            percentile_disc(array[
                (({{ size }} + 1) / 2 - 0.5) / {{ size }},
                (({{ size }} + 2) / 2 - 0.5) / {{ size }}
            ]) within group (order by {{ value }}) as middle
            {%- for expression, name in aggregates %},
            {{ expression }} as {{ name }}
            {%- endfor %}
        from {{ rows }}
        group by {{ key }}, {{ size }}
    ) as middles
{%- endmacro %}

{% macro spark__group_medians(rows, key, size, value, median_as, aggregates) -%}
    select
        {{ key }},
        avg({{ value }}) filter (
            where position in (
                {{ integer_divide(size ~ ' + 1', 2) }},
                {{ integer_divide(size ~ ' + 2', 2) }}
            )
        ) as {{ median_as }}
        {%- for expression, name in aggregates %},
        {{ expression }} as {{ name }}
        {%- endfor %}
    from (
        select
            *,
            row_number() over (partition by {{ key }} order by {{ value }}) as position
        from {{ rows }}
    ) as numbered
    group by {{ key }}
{%- endmacro %}
