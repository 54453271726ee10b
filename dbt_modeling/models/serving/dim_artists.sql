-- One row per artist: the artists of the songs catalogue (latest version of each track), plus one inferred member
-- per artist known only from session items, i.e. the artist_id of an item whose track has no catalogue artist yet
-- (fact_session's artist_key is the catalogue's artist_id, else the item's). An inferred member takes the
-- artist_name of the latest such item; artist_mbid is null and is_inferred is true. When the catalogue brings the
-- artist, the next build (the dim is a table, rebuilt every run) replaces the inferred member by the real one.
-- An item with no artist_id and no catalogue track has no artist member: fact_session's relationships test reports it.
with catalogue as (
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
),

session_only as (
    select
        items.artist_id,
        items.artist_name,
        row_number() over (
            partition by items.artist_id
            order by items.ingest_on desc, items.processing_timestamp desc, items.session_id desc, items.item_index desc
        ) as rn
    from {{ ref('stg_sessions') }} as items
    left join {{ ref('stg_songs') }} as songs
        on songs.track_id = items.track_id
    left join catalogue
        on catalogue.artist_id = items.artist_id
       and catalogue.rn = 1
    where songs.artist_id is null        -- the fact takes the item's artist_id
      and items.artist_id is not null
      and catalogue.artist_id is null    -- not in the catalogue under another track either
)

select
    {{ surrogate_key(['artist_id']) }} as artist_key,
    artist_id,
    artist_mbid,
    artist_name,
    false as is_inferred
from catalogue
where rn = 1

union all

select
    {{ surrogate_key(['artist_id']) }} as artist_key,
    artist_id,
    cast(null as {{ dbt.type_string() }}) as artist_mbid,
    artist_name,
    true as is_inferred
from session_only
where rn = 1
