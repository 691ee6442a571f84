-- One row per element of the JSON arrays (1-based positions), two levels deep, and per field
-- and defect of a lateral list of values.
with

inputs as (

    select 1 as case_id, {{ text_literal('{"v": [{"w": [10, 20]}, {"w": []}, {"w": "x"}, 7]}') }} as json_text
    union all
    select 2 as case_id, {{ text_literal('{"v": []}') }} as json_text
    union all
    select 3 as case_id, {{ text_literal('{"v": {"w": [1]}}') }} as json_text
    union all
    select 4 as case_id, {{ text_literal('{}') }} as json_text

),

parsed as (

    select case_id, {{ json_parse('json_text') }} as document from inputs

),

unnested as (

    select
        parsed.case_id,
        cast(outer_element.outer_position as integer) as outer_position,
        cast(inner_element.inner_position as integer) as inner_position,
        {{ json_kind('outer_element.outer_json') }} as outer_kind,
        cast({{ json_scalar('inner_element.inner_json') }} as integer) as inner_value
    from parsed
    {{ unnest_json_array(json_get('parsed.document', 'v'), 'outer_element', 'outer_json', 'outer_position') }}
    {{ unnest_json_array(json_get('outer_element.outer_json', 'w'), 'inner_element', 'inner_json', 'inner_position') }}

),

fields as (

    select
        unnested.case_id,
        unnested.outer_position,
        unnested.inner_position,
        field.name as field,
        field.defect
    from unnested
    {{ lateral_values(
        [["'outer'", "case when unnested.outer_kind <> 'object' then 'wrong-type' end"],
         ["'inner'", "case when unnested.inner_value > 15 then 'large' end"]],
        'field', ['name', 'defect']) }}

)

select * from fields
