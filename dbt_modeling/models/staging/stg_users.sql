-- One row per user: the latest ingest_on wins (then the latest processing). Rename and type only.
with ranked as (
    select
        u.*,
        row_number() over (
            partition by user_id
            order by ingest_on desc, processing_timestamp desc
        ) as rn
    from {{ source('deftunes_transform', 'users') }} as u
)
select
    user_id,
    user_name                                    as first_name,
    user_lastname                                as last_name,
    cast(latitude as double precision)              as latitude,
    cast(longitude as double precision)             as longitude,
    place_name,
    country_code,
    timezone,
    cast(user_since as {{ dbt.type_timestamp() }})  as user_since,
    cast(ingest_on as date)                         as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp
from ranked
where rn = 1
