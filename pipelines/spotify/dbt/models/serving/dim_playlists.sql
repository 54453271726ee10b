-- Dimension: one row per playlist that has additions. Its name and owner are those of its most recently processed
-- addition row (every run re-reads each playlist whole, so a renamed playlist's additions come again as new
-- versions carrying the new name; ties broken by the latest addition, then track_id). tracks_count is the number
-- of additions recorded (playlist_tracks only gains rows: a track removed from the playlist still counts),
-- distinct_tracks the tracks among them, first_added_at / last_added_at the first and last addition.
with ranked as (
    select
        playlist_id,
        playlist_name,
        owner_id,
        row_number() over (
            partition by playlist_id
            order by ingest_on desc, processing_timestamp desc, added_at desc, track_id desc
        ) as rn
    from {{ ref('stg_playlist_tracks') }}
),
counts as (
    select
        playlist_id,
        count(*)                  as tracks_count,
        count(distinct track_id)  as distinct_tracks,
        min(added_at)             as first_added_at,
        max(added_at)             as last_added_at
    from {{ ref('stg_playlist_tracks') }}
    group by playlist_id
)
select
    r.playlist_id,
    r.playlist_name,
    r.owner_id,
    cast(c.tracks_count as integer)     as tracks_count,
    cast(c.distinct_tracks as integer)  as distinct_tracks,
    c.first_added_at,
    c.last_added_at
from ranked as r
inner join counts as c
    on c.playlist_id = r.playlist_id
where r.rn = 1
