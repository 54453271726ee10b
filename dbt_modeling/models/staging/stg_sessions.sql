-- One row per purchased song in a session. Rename and type only (strings stay as they are).
select
    session_id,
    cast(item_index as integer)                               as item_index,
    user_id,
    song_id                                                   as track_id,  -- item song_id values are TRACK ids
    song_name,
    artist_id,
    artist_name,
    cast(price as {{ dbt.type_numeric() }})                   as price,
    currency,
    cast(liked as boolean)                                    as liked,
    cast(liked_since as {{ dbt.type_timestamp() }})           as liked_since,
    user_agent,
    cast(session_start_time as {{ dbt.type_timestamp() }})    as session_start_time,
    cast(ingest_on as date)                                   as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }})  as processing_timestamp
from {{ source('deftunes_transform', 'sessions') }}
