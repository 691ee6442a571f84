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
        {{ field_defect('user', 'user_id') }} as user_id_defect,
        {{ field_defect('user', 'name') }} as name_defect,
        {{ field_defect('user', 'email') }} as email_defect,
        {{ field_defect('user', 'instagram_handle') }} as instagram_handle_defect,
        {{ field_defect('user', 'tiktok_handle') }} as tiktok_handle_defect,
        {{ field_defect('user', 'joined_at') }} as joined_at_defect,
        {{ field_defect('user', 'advocacy_programs') }} as advocacy_programs_defect

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
        {{ field_value('user', 'user_id') }} as user_id,
        {{ field_value('user', 'name') }} as name,
        {{ field_value('user', 'email') }} as email,
        {{ field_value('user', 'instagram_handle') }} as instagram_handle,
        {{ field_value('user', 'tiktok_handle') }} as tiktok_handle,
        {{ field_value('user', 'joined_at') }} as joined_at,
        {{ field_value('user', 'advocacy_programs') }} as program_count,
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
        {{ has_no_defects('user') }} as has_no_defects

    from cleaned

)

select * from final
