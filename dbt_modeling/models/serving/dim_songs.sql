-- One row per track (the sessions' song_id is a track id): the latest version of each track of the catalogue
-- (history in the snap_songs snapshot), plus one inferred member per track that session items reference but
-- whose catalogue record has not landed yet (a late-arriving dimension member). An inferred member takes what the
-- latest session item of that track knows (song_name as title, artist_id, artist_name); every other attribute is
-- null and is_inferred is true. The key is the same md5 of track_id either way, so the next build after the
-- track lands (the dim is a table, rebuilt every run) replaces the inferred member by the real one.
with songs as (
    select
        track_id,
        song_id,
        title,
        release,
        release_year,
        duration_seconds,
        artist_id,
        artist_name,
        ingest_on
    from {{ ref('stg_songs') }}
),

inferred as (
    select
        track_id,
        song_name,
        artist_id,
        artist_name
    from (
        select
            sessions.track_id,
            sessions.song_name,
            sessions.artist_id,
            sessions.artist_name,
            row_number() over (
                partition by sessions.track_id
                order by sessions.ingest_on desc, sessions.processing_timestamp desc,
                         sessions.session_id desc, sessions.item_index desc
            ) as rn
        from {{ ref('stg_sessions') }} as sessions
        left join songs
            on songs.track_id = sessions.track_id
        where sessions.track_id is not null
          and songs.track_id is null
    ) as latest_item
    where rn = 1
)

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
    ingest_on,
    false as is_inferred
from songs

union all

select
    {{ surrogate_key(['track_id']) }} as song_key,
    track_id,
    cast(null as {{ dbt.type_string() }}) as song_id,
    song_name as title,
    cast(null as {{ dbt.type_string() }}) as release,
    cast(null as integer) as release_year,
    cast(null as double precision) as duration_seconds,
    {{ surrogate_key(['artist_id']) }} as artist_key,
    artist_id,
    artist_name,
    cast(null as date) as ingest_on,
    true as is_inferred
from inferred
