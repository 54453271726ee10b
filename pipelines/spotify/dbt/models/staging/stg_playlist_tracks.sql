-- One row per playlist addition (playlist_id, track_id, added_at): its latest version (latest ingest_on, then
-- latest processing, then latest landing object as a deterministic tie-break). The table only gains rows (every
-- run adds the new additions); a later version of an addition carries, e.g., the playlist's new name.
-- position is the 0-based index of the item in its playlist.
with ranked as (
    select
        t.*,
        row_number() over (
            partition by playlist_id, track_id, added_at
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('spotify', 'playlist_tracks') }} as t
)
select
    playlist_id,
    playlist_name,
    owner_id,
    cast(position as integer)                                as position,
    track_id,
    album_id,
    artist_id,
    cast(added_at as {{ dbt.type_timestamp() }})             as added_at,
    nullif(added_by, '')                                     as added_by,
    cast(ingest_on as date)                                  as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp
from ranked
where rn = 1
