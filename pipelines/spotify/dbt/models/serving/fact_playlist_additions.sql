-- Fact: one row per playlist addition (playlist_id, track_id, added_at), at its latest version
-- (stg_playlist_tracks). playlist_addition_key is the md5 surrogate key (macro surrogate_key) of that natural key,
-- stable across builds. added_date_key (yyyymmdd, to dim_dates) is the day of added_at; position the 0-based
-- index of the item in its playlist.
-- album_id and artist_id are those the playlist item names (the track's album and first artist), or the track's
-- own (stg_tracks) when the item lacks them.
-- artist_version_key is the row of dim_artists that is current when the fact is built (is_current), not the one
-- valid at added_at: the lake's history of an artist starts with the first run that read it, so additions older
-- than that (most of a catalogue's) have no version valid at their time, and every build rebuilds this table,
-- so the key follows the artist's current version. A point-in-time key would join on
-- added_at >= valid_from and (valid_to is null or added_at < valid_to).
-- left joins: an addition whose track or artist has not landed keeps its row (the relationships tests then fail
-- on it), so no addition is lost silently.
select
    {{ surrogate_key(['p.playlist_id', 'p.track_id', 'p.added_at']) }} as playlist_addition_key,
    p.playlist_id,
    p.track_id,
    coalesce(p.album_id, t.album_id)                                    as album_id,
    coalesce(p.artist_id, t.artist_id)                                  as artist_id,
    a.artist_version_key,
    p.added_at,
    {{ date_key('p.added_at') }}                                        as added_date_key,
    p.position,
    p.added_by
from {{ ref('stg_playlist_tracks') }} as p
left join {{ ref('stg_tracks') }} as t
    on t.track_id = p.track_id
left join {{ ref('dim_artists') }} as a
    on a.artist_id = coalesce(p.artist_id, t.artist_id)
   and a.is_current = true
