-- One row per purchased song in a session: the latest version of each (session_id, item_index). The transform
-- zone is append-only and versioned by record (a changed item is appended again, with a later ingest_on and/or
-- processing_timestamp), so the latest ingest_on wins, then the latest processing, then the latest landing object
-- (a tie-break only, so that the choice is deterministic). Rename and type only (strings stay as they are).
with ranked as (
    select
        s.*,
        row_number() over (
            partition by session_id, item_index
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('deftunes_transform', 'sessions') }} as s
)
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
from ranked
where rn = 1
