-- One row per track (the sessions' song_id is a track id).
select
    {{ surrogate_key(['track_id']) }} as song_key,
    track_id,
    song_id,
    title,
    release,
    release_year,
    duration_seconds,
    {{ surrogate_key(['artist_id']) }} as artist_key,
    artist_id,
    artist_name,
    ingest_on
from {{ ref('stg_songs') }}
