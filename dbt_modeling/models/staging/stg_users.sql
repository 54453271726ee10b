-- One row per user: the latest version wins: the latest ingest_on, then the latest processing, then the latest
-- landing object (a tie-break only, so that the choice is deterministic). Rename and type only.
with ranked as (
    select
        u.*,
        row_number() over (
            partition by user_id
            order by ingest_on desc, processing_timestamp desc, source_object desc
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
