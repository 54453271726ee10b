-- Dimension: one row per song (stg_songs holds each song_id's latest version).
select
    song_id,
    title,
    artist_id,
    year,
    duration
from {{ ref('stg_songs') }}
