{{ config(**bi_view_config()) }}
-- Genres by playlist additions: the genre of an addition is its artist's primary_genre (the current row of
-- dim_artists; 'unknown' for an artist without genres, one not landed yet, or an addition without an artist).
-- additions counts every addition (the rows of fact_playlist_additions add up over the genres), artists the
-- distinct artists added, playlists the distinct playlists, tracks the distinct tracks.
select
    coalesce(dim_artists.primary_genre, 'unknown')                 as genre,
    count(*)                                                       as additions,
    count(distinct fact_playlist_additions.artist_id)              as artists,
    count(distinct fact_playlist_additions.playlist_id)            as playlists,
    count(distinct fact_playlist_additions.track_id)               as tracks
from {{ ref('fact_playlist_additions') }} as fact_playlist_additions
left join {{ ref('dim_artists') }} as dim_artists
    on dim_artists.artist_id = fact_playlist_additions.artist_id
   and dim_artists.is_current = true
group by coalesce(dim_artists.primary_genre, 'unknown')
