-- A matched play's song has the event's title and artist name (stg_songs: the name it was matched on) and a
-- duration within 1 s of the event's length.
-- Returns the plays that break it.
select
    sp.songplay_id,
    sp.song_id,
    e.song,
    e.artist,
    e.length,
    s.title,
    ss.artist_name,
    s.duration
from {{ ref('songplays') }} as sp
inner join {{ ref('stg_events') }} as e
    on e.session_id = sp.session_id
   and e.item_in_session = sp.item_in_session
inner join {{ ref('songs') }} as s
    on s.song_id = sp.song_id
inner join {{ ref('stg_songs') }} as ss
    on ss.song_id = sp.song_id
where sp.song_id is not null
  and (
      e.length is null
      or abs(e.length - s.duration) >= 1.0
      or e.song <> s.title
      or e.artist <> ss.artist_name
  )
