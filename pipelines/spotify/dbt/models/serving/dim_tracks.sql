-- Dimension: one row per track (stg_tracks holds each track_id's latest version), with the name of its album and
-- of its first artist as they are now (the current rows of dim_albums and dim_artists). left joins: a track whose
-- album or artist has not landed keeps its row, with a null name.
select
    t.track_id,
    t.name,
    t.duration_ms,
    t.is_explicit,
    t.popularity,
    t.track_number,
    t.album_id,
    al.name  as album_name,
    t.artist_id,
    ar.name  as artist_name
from {{ ref('stg_tracks') }} as t
left join {{ ref('dim_albums') }} as al
    on al.album_id = t.album_id
   and al.is_current = true
left join {{ ref('dim_artists') }} as ar
    on ar.artist_id = t.artist_id
   and ar.is_current = true
