{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='brand_id',
        on_schema_change='fail',
        post_hook="{{ apply_keys() }}",
        indexes=[
            {'columns': ['brand_normalised'], 'type': 'hash'},
        ],
    )
}}

-- (brand_normalised has a hash index: equality lookups whatever a value's length; a btree
-- entry stops at 2,704 bytes, and one long brand failed the build)

with

batch_files as (

    select * from {{ ref('stg_batch_files') }}

),

sightings as (

    select * from {{ ref('int_program_brands') }}

),

-- brands named by the versions each batch delivered (current or since replaced), so a brand
-- keeps its id and first sighting when the files that named it change
delivered as (

    select
        sightings.brand_id,
        sightings.brand,
        sightings.brand_normalised,
        sightings.loaded_at,
        batch_files.batch_id

    from batch_files
    -- per delivered version, its brands: in an incremental run offset 0 keeps this a lookup by
    -- primary key, so only the versions of the new batches are unnested; a full build reads
    -- every version, and joins them (at 1M files, 29 batches: 12.3-14.8 s against 30.6-31.0 s
    -- as lookups). (macros/portable.sql: on Spark, a join either way)
    {{ lateral_lookup('sightings', 'sightings', [
        ['document_key', 'batch_files.document_key'],
        ['content_sha256', 'batch_files.content_sha256'],
    ], 'offset 0' if is_incremental() else '') }}
    where batch_files.is_new_version
    {% if is_incremental() %}
        and batch_files.batch_id > {{ batch_watermark('last_seen_batch_id') }}
    {% endif %}

),

seen as (

    select
        brand_id,
        {{ first_by('brand', ['loaded_at', 'brand']) }} as brand,
        min(brand_normalised) as brand_normalised,
        min(loaded_at) as first_seen_at,
        min(batch_id) as first_seen_batch_id,
        max(batch_id) as last_seen_batch_id

    from delivered
    group by brand_id

),

{% if is_incremental() %}

-- combine with what the table already holds: earliest sighting wins, latest batch is kept
combined as (

    select
        seen.brand_id,
        case
            when existing.brand_id is null then seen.brand
            when existing.first_seen_at < seen.first_seen_at then existing.brand
            when seen.first_seen_at < existing.first_seen_at then seen.brand
            else least(existing.brand, seen.brand)
        end as brand,
        seen.brand_normalised,
        least(existing.first_seen_at, seen.first_seen_at) as first_seen_at,
        least(existing.first_seen_batch_id, seen.first_seen_batch_id) as first_seen_batch_id,
        greatest(existing.last_seen_batch_id, seen.last_seen_batch_id) as last_seen_batch_id

    from seen
    left join {{ this }} as existing
        on seen.brand_id = existing.brand_id

),

{% else %}

combined as (

    select * from seen

),

{% endif %}

unknown_brand as (

    select
        {{ unknown_brand_id() }} as brand_id,
        {{ cast_as("'(unknown brand)'", 'text') }} as brand,
        {{ cast_as('null', 'text') }} as brand_normalised,
        {{ cast_as('null', 'timestamptz') }} as first_seen_at,
        cast(null as bigint) as first_seen_batch_id,
        cast(null as bigint) as last_seen_batch_id

),

final as (

    select
        brand_id,
        brand,
        brand_normalised,
        false as is_unknown_brand,
        first_seen_at,
        first_seen_batch_id,
        last_seen_batch_id

    from combined

    union all

    select
        brand_id,
        brand,
        brand_normalised,
        true as is_unknown_brand,
        first_seen_at,
        first_seen_batch_id,
        last_seen_batch_id

    from unknown_brand

)

select * from final
