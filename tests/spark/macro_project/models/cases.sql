-- One row per JSON input: what each portable macro makes of its field `v`.
{% set inputs = [
    '{"v": "  Hello World \\t"}', '{"v": ""}', '{"v": null}', '{}', '{"v": 12}', '{"v": -3}',
    '{"v": 1.50}', '{"v": 1e2}', '{"v": true}', '{"v": [1, "a", {"b": 2}]}', '{"v": []}',
    '{"v": {"a": 1}}', '{"v": "1ed6a9d2-4c1e-4a8f-9a55-0e8f1c6f2a10"}',
    '{"v": "1ED6A9D2-4C1E-4A8F-9A55-0E8F1C6F2A10"}', '{"v": "not-a-uuid"}',
    '{"v": "Jane.Doe@Example.com"}', '{"v": "invalid-email"}', '{"v": "@@Some_Handle"}',
    '{"v": "https://www.example.com/p/1?x=2"}', '{"v": "https://exa mple.com"}',
    '{"v": "2024-03-05T10:20:30Z"}', '{"v": "2024-03-05 10:20:30+02:00"}', '{"v": "2024-03-05"}',
    '{"v": "2024-02-30T00:00:00"}', '{"v": "not-a-date"}', '{"v": "12.5"}', '{"v": "-0.5e3"}',
    '{"v": "abc"}', '{"v": "123"}', '{"v": "1e30"}', '{"v": "NESTLÉ   Group"}', '{"v": "Straße"}',
    '{"v": "STRASSE"}', '{"v": "Nestlé group"}', '{"v": "ÉCOLE"}', '{"v": "ﬁne"}',
    '{"v": "E\\u0301COLE"}', '{"v": "\\uff21\\uff22"}', '{"v": "a\\\\b"}',
    '{"v": "\\u00a0 Acme\\u00a0Group\\u3000\\ufeff"}', '{"v": "\\u200b\\u2003"}',
    '{"v": "Ac\\u00adme\\u200b Gr\\u2060oup\\ufeffs"}',
    '{"v": "\\uff2e\\uff0f\\uff21"}', '{"v": "\\uff07\\uff3c\\uff02\\u3000\\uff11\\uff12\\uff4e\\uff29\\uff5e"}',
] -%}
with

inputs as (

    select * from (
        values
        {%- for text in inputs %}
            ({{ loop.index }}, {{ text_literal(text) }}){{ "," if not loop.last }}
        {%- endfor %}
    ) as inputs (case_id, json_text)

),

parsed as (

    select case_id, json_text, {{ json_parse('json_text') }} as document from inputs

),

fields as (

    select
        case_id,
        {{ json_kind(json_get('document', 'v')) }} as kind,
        {{ json_get('document', 'v') }} as value_json
    from parsed

),

texts as (

    select
        case_id,
        kind,
        value_json,
        case when kind in ('string', 'boolean') then {{ json_scalar('value_json') }} end as scalar_text,
        case when kind = 'number' then cast({{ json_scalar('value_json') }} as numeric(38, 6)) end as scalar_number,
        case when kind = 'string' then {{ trim_whitespace(json_scalar('value_json')) }} end as trimmed
    from fields

),

final as (

    select
        case_id,
        kind,
        scalar_text,
        scalar_number,
        trimmed,
        case when kind = 'array' then cast({{ json_array_length('value_json') }} as integer) end as array_length,
        {{ adapter.dispatch('lower_text', 'duel')('trimmed') }} as lowered,
        {{ adapter.dispatch('fold_text', 'duel')('trimmed') }} as folded,
        '@' || {{ trim_leading(adapter.dispatch('lower_text', 'duel')('trimmed'), '@') }} as handle,
        {{ text_starts_with('trimmed', "'Jane'") }} as starts_with_jane,
        {{ regex_match('trimmed', defect_pattern('uuid'), case_insensitive=true) }} as is_uuid,
        {{ regex_match(adapter.dispatch('lower_text', 'duel')('trimmed'), defect_pattern('email'), negate=true) }} as is_not_email,
        {{ regex_match('trimmed', defect_pattern('url'), case_insensitive=true) }} as is_url,
        {{ regex_match('trimmed', defect_pattern('iso_timestamp'), case_insensitive=true) }} as is_iso_timestamp,
        {{ regex_match('trimmed', defect_pattern('decimal'), case_insensitive=true, negate=true) }} as is_not_decimal,
        {{ regex_match('trimmed', "'^[+-]?[0-9]+(\.[0-9]+)?$'") }} as is_plain_number,
        {{ regex_replace_all('trimmed', "'[aeiou]'", "'_'") }} as without_vowels,
        case
            when {{ regex_match('trimmed', defect_pattern('iso_timestamp'), case_insensitive=true) }}
            then {{ input_is_valid('trimmed', 'timestamp') }}
        end as is_valid_timestamp,
        case
            when {{ regex_match('trimmed', defect_pattern('decimal'), case_insensitive=true) }}
            then {{ input_is_valid('trimmed', 'numeric') }}
        end as is_valid_numeric,
        case
            when not {{ regex_match('trimmed', defect_pattern('iso_timestamp'), case_insensitive=true) }}
                or not {{ input_is_valid('trimmed', 'timestamp') }} then null
            when {{ regex_match('trimmed', defect_pattern('iso_offset'), case_insensitive=true) }}
            then {{ cast_as('trimmed', 'timestamptz') }}
            else {{ utc_timestamp('trimmed') }}
        end as timestamp_value,
        {{ md5_uuid(cast_as('case_id', 'text') ~ " || chr(31) || coalesce(trimmed, chr(30))") }} as row_key,
        {{ uuid_literal('00000000-0000-0000-0000-000000000000') }} as unknown_key
    from texts

)

select * from final
