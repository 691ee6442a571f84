with

current_documents as (

    select * from {{ ref('int_current_documents') }}

),

extracted as (

    select
        document_key,
        source_name,
        content_sha256,
        batch_id,
        loaded_at,
        updated_at,
        parse_status,
        document -> 'user_id' as user_id_json,
        document -> 'name' as name_json,
        document -> 'email' as email_json,
        document -> 'instagram_handle' as instagram_handle_json,
        document -> 'tiktok_handle' as tiktok_handle_json,
        document -> 'joined_at' as joined_at_json,
        document -> 'advocacy_programs' as advocacy_programs_json

    from current_documents

),

classified as (

    select
        *,
        {{ uuid_defect('user_id_json') }} as user_id_defect,
        {{ text_defect('name_json', placeholder_pattern='^\?+$') }} as name_defect,
        {{ email_defect('email_json', placeholders=['invalid-email']) }} as email_defect,
        {{ handle_defect('instagram_handle_json', placeholders=['#error_handle'], min_length=1, max_length=30) }}
            as instagram_handle_defect,
        {{ handle_defect('tiktok_handle_json', placeholders=['#error_handle'], min_length=2, max_length=24) }}
            as tiktok_handle_defect,
        {{ timestamp_defect('joined_at_json', placeholders=['not-a-date']) }} as joined_at_defect,
        {{ array_defect('advocacy_programs_json') }} as advocacy_programs_defect

    from extracted

),

cleaned as (

    select
        {{ surrogate_key(['document_key']) }} as user_key,
        document_key,
        source_name,
        content_sha256,
        batch_id,
        loaded_at,
        updated_at,
        parse_status,
        {{ uuid_value('user_id_json', 'user_id_defect') }} as user_id,
        {{ text_value('name_json', 'name_defect') }} as name,
        {{ email_value('email_json', 'email_defect') }} as email,
        {{ handle_value('instagram_handle_json', 'instagram_handle_defect') }} as instagram_handle,
        {{ handle_value('tiktok_handle_json', 'tiktok_handle_defect') }} as tiktok_handle,
        {{ timestamp_value('joined_at_json', 'joined_at_defect') }} as joined_at,
        case
            when jsonb_typeof(advocacy_programs_json) = 'array'
            then jsonb_array_length(advocacy_programs_json)
            else 0
        end as program_count,
        user_id_defect,
        name_defect,
        email_defect,
        instagram_handle_defect,
        tiktok_handle_defect,
        joined_at_defect,
        advocacy_programs_defect

    from classified

),

final as (

    select
        *,
        (
            user_id_defect is null
            and name_defect is null
            and email_defect is null
            and instagram_handle_defect is null
            and tiktok_handle_defect is null
            and joined_at_defect is null
            and advocacy_programs_defect is null
        ) as has_no_defects

    from cleaned

)

select * from final
