-- Fact: one row per NextSong event (a song play). songplay_id is the md5 surrogate key (macro surrogate_key) of the
-- event's natural key (session_id, item_in_session), so it is stable across builds.
-- The song (and its artist) is the one whose title, artist name and duration match the event's song, artist and
-- length (|length - duration| < 1 s). An event matching several songs keeps one: the closest duration, then the
-- smallest song_id. A play that matches no song keeps its row, with null song_id and artist_id.
with plays as (
    select *
    from {{ ref('stg_events') }}
    where page = 'NextSong'
),
candidates as (
    select
        p.session_id,
        p.item_in_session,
        s.song_id,
        s.artist_id,
        row_number() over (
            partition by p.session_id, p.item_in_session
            order by abs(p.length - s.duration), s.song_id
        ) as rn
    from plays as p
    inner join {{ ref('stg_songs') }} as s
        on p.song = s.title
       and p.artist = s.artist_name
       and abs(p.length - s.duration) < 1.0
),
matched as (
    select session_id, item_in_session, song_id, artist_id
    from candidates
    where rn = 1
)
select
    {{ surrogate_key(['p.session_id', 'p.item_in_session']) }} as songplay_id,
    p.ts              as start_time,
    p.user_id,
    p.level,
    m.song_id,
    m.artist_id,
    p.session_id,
    p.item_in_session,
    p.location,
    p.user_agent
from plays as p
left join matched as m
    on m.session_id = p.session_id
   and m.item_in_session = p.item_in_session
