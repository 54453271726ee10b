-- One row per artist of the songs catalogue.
with ranked as (
    select
        artist_id,
        artist_mbid,
        artist_name,
        row_number() over (
            partition by artist_id
            order by ingest_on desc, artist_mbid, artist_name
        ) as rn
    from {{ ref('stg_songs') }}
    where artist_id is not null
)
select
    {{ surrogate_key(['artist_id']) }} as artist_key,
    artist_id,
    artist_mbid,
    artist_name
from ranked
where rn = 1
