-- Dimension: one row per artist. The songs of an artist may disagree on its name, location or coordinates: the
-- attributes come together from one song, the one with the most of them known, then the latest version, then the
-- smallest song_id (a deterministic choice).
with ranked as (
    select
        artist_id,
        artist_name,
        artist_location,
        artist_latitude,
        artist_longitude,
        row_number() over (
            partition by artist_id
            order by
                (case when artist_latitude is not null and artist_longitude is not null then 1 else 0 end
                 + case when artist_location is not null then 1 else 0 end) desc,
                ingest_on desc,
                processing_timestamp desc,
                song_id
        ) as rn
    from {{ ref('stg_songs') }}
)
select
    artist_id,
    artist_name       as name,
    artist_location   as location,
    artist_latitude   as latitude,
    artist_longitude  as longitude
from ranked
where rn = 1
