{{ config(enabled=target.type == 'postgres') }}
-- One row per construct: the SQL the models and macros write today, and what the portable macro
-- renders on Postgres. The test compares them (whitespace aside): moving a model onto the macros
-- changes nothing on Postgres.
{% set lower = adapter.dispatch('lower_text', 'duel') -%}
{%- set fold = adapter.dispatch('fold_text', 'duel') -%}
{%- set pairs = [
    ('json_get', "document -> 'user_id'", json_get('document', 'user_id')),
    ('field_kind', "jsonb_typeof(likes_json)", field_scalar_columns('task', ['likes'])[0][0]),
    ('field_text', field_scalar_columns('task', ['likes'])[1][0],
        "(case when " ~ json_kind('likes_json') ~ " in ('string', 'number') then "
        ~ trim_whitespace(json_scalar('likes_json')) ~ " end)"),
    ('json_text', json_text('likes_json'), "(case when likes_kind = 'string' then likes_text end)"),
    ('is_missing', is_missing('likes_json'), "(likes_json is null or likes_kind = 'null')"),
    ('json_number', json_number('likes_json'), "cast(likes_text as numeric)"),
    ('array_length', "jsonb_array_length(tasks_completed_json)", json_array_length('tasks_completed_json')),
    ('unnest', "cross join lateral jsonb_array_elements(case when jsonb_typeof(current_documents.document -> 'advocacy_programs') = 'array'"
        ~ " then current_documents.document -> 'advocacy_programs' else '[]'::jsonb end) with ordinality as program (program_json, program_position)",
        unnest_json_array(json_get('current_documents.document', 'advocacy_programs'), 'program', 'program_json', 'program_position')),
    ('regex_uuid', json_text('likes_json') ~ " !~* " ~ defect_pattern('uuid'), regex_match(json_text('likes_json'), defect_pattern('uuid'), true, true)),
    ('regex_email', lower_text(json_text('likes_json')) ~ " !~ " ~ defect_pattern('email'), regex_match(lower_text(json_text('likes_json')), defect_pattern('email'), negate=true)),
    ('regex_offset', json_text('likes_json') ~ " ~* " ~ defect_pattern('iso_offset'), regex_match(json_text('likes_json'), defect_pattern('iso_offset'), true)),
    ('regex_placeholder', json_text('likes_json') ~ " ~ '^[?]+$'", regex_match(json_text('likes_json'), "'^[?]+$'")),
    ('input_is_valid', "pg_input_is_valid(" ~ json_text('likes_json') ~ ", 'timestamp')", input_is_valid(json_text('likes_json'), 'timestamp')),
    ('timestamptz', "cast(" ~ json_text('likes_json') ~ " as timestamptz)", cast_as(json_text('likes_json'), 'timestamptz')),
    ('utc_timestamp', "cast(" ~ json_text('likes_json') ~ " as timestamp) at time zone 'UTC'", utc_timestamp(json_text('likes_json'))),
    ('surrogate_key', surrogate_key(['document_key', 'program_position']),
        md5_uuid("coalesce(" ~ cast_as('document_key', 'text') ~ ", chr(30)) || chr(31) || coalesce("
            ~ cast_as('program_position', 'text') ~ ", chr(30))")),
    ('unknown_brand_id', unknown_brand_id(), uuid_literal('00000000-0000-0000-0000-000000000000')),
    ('lower_text', lower_text('x'), lower('x')),
    ('fold_text', fold_text('x'), fold('x')),
    ('handle_text', handle_text('likes_json'), "('@' || " ~ trim_leading(lower_text(json_text('likes_json')), '@') ~ ")"),
    ('known_share', known_share('count(x)', 'count(*)'),
        "cast(round(" ~ typecast('count(x)', 'numeric') ~ " / nullif(count(*), 0), 6) as numeric(9, 6))"),
    ('starts_with', "starts_with(users.document_key, 'content:')", text_starts_with('users.document_key', "'content:'")),
    ('first_by', "(array_agg(brand order by loaded_at, brand))[1]", first_by('brand', ['loaded_at', 'brand'])),
    ('utc_month', "cast(date_trunc('month', users.joined_at at time zone 'UTC') as date)", utc_month('users.joined_at')),
    ('seconds_between', "cast(extract(epoch from finished_at - started_at) as numeric)", seconds_between('started_at', 'finished_at')),
    ('regex_replace_all', "regexp_replace(x, '[ ]+', ' ', 'g')", regex_replace_all('x', "'[ ]+'", "' '")),
    ('lateral_values', "cross join lateral ( values ('program_id', programs.program_id_defect), ('brand', programs.brand_defect) ) as field (name, defect)",
        lateral_values([["'program_id'", 'programs.program_id_defect'], ["'brand'", 'programs.brand_defect']], 'field', ['name', 'defect'])),
    ('json_parse', "cast(x as jsonb)", json_parse('x')),
    ('data_type', "numeric(18, 2)", data_type('numeric(18, 2)')),
    ('select_computed_once', "select outer_rows.*, computed.* from outer_rows cross join lateral unnest(array[v + 1], array[v * 2]) as computed (w, x)",
        select_computed_once('outer_rows', 'computed', [['v + 1', 'w'], ['v * 2', 'x']])),
] -%}
{% for name, today, portable in pairs -%}
select '{{ name }}' as construct, $sql${{ today }}$sql$ as today, $sql${{ portable }}$sql$ as portable
{{ 'union all' if not loop.last }}
{% endfor %}
