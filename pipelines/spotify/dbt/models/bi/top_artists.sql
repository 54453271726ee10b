{{ config(**bi_view_config()) }}
-- Artists by playlist additions: one row per artist with at least one addition (fact_playlist_additions.artist_id),
-- with its number of additions, of distinct playlists and of distinct tracks added; its current name, genre,
-- popularity and followers (the is_current row of dim_artists); and how its popularity and followers changed
-- since its first version in the lake (version_number 1): popularity_change = current - first (0 for an artist
-- that changed and changed back). versions is the number of type-2 versions, current_since the current
-- version's valid_from. An artist not landed yet keeps its additions, with null attributes.
select
    additions.artist_id,
    current_version.name                                         as artist_name,
    current_version.primary_genre,
    additions.additions,
    additions.playlists,
    additions.tracks,
    current_version.popularity,
    current_version.followers,
    first_version.popularity                                     as first_popularity,
    first_version.followers                                      as first_followers,
    current_version.popularity - first_version.popularity        as popularity_change,
    current_version.followers - first_version.followers          as followers_change,
    current_version.version_number                               as versions,
    current_version.valid_from                                   as current_since
from (
    select
        artist_id,
        count(*)                     as additions,
        count(distinct playlist_id)  as playlists,
        count(distinct track_id)     as tracks
    from {{ ref('fact_playlist_additions') }}
    where artist_id is not null
    group by artist_id
) as additions
left join {{ ref('dim_artists') }} as current_version
    on current_version.artist_id = additions.artist_id
   and current_version.is_current = true
left join {{ ref('dim_artists') }} as first_version
    on first_version.artist_id = additions.artist_id
   and first_version.version_number = 1
