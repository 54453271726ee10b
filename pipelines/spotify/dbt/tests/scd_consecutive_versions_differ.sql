-- The type-2 history is collapsed and contiguous: version_number runs 1..n per key (n rows), each version's
-- valid_to is the next one's valid_from, and two consecutive versions differ in a tracked attribute (name,
-- popularity, followers for artists; name, popularity for albums; null-safe). Returns the versions that break it.
with artists as (
    select
        'dim_artists'                  as dim,
        artist_id                      as natural_key,
        version_number,
        valid_from,
        valid_to,
        name,
        popularity,
        followers,
        count(*) over (partition by artist_id) as n
    from {{ ref('dim_artists') }}
),
albums as (
    select
        'dim_albums'                   as dim,
        album_id                       as natural_key,
        version_number,
        valid_from,
        valid_to,
        name,
        popularity,
        cast(null as bigint)           as followers,
        count(*) over (partition by album_id) as n
    from {{ ref('dim_albums') }}
),
versions as (
    select * from artists
    union all
    select * from albums
)
select
    v.dim,
    v.natural_key,
    v.version_number,
    v.n,
    nxt.version_number as next_version,
    case
        when v.version_number < 1 or v.version_number > v.n then 'version_number outside 1..n'
        when v.version_number < v.n and nxt.version_number is null then 'next version missing'
        when v.version_number < v.n and (v.valid_to is null or v.valid_to <> nxt.valid_from)
            then 'valid_to is not the next valid_from'
        else 'same tracked attributes as the next version'
    end as problem
from versions as v
left join versions as nxt
    on nxt.dim = v.dim
   and nxt.natural_key = v.natural_key
   and nxt.version_number = v.version_number + 1
where v.version_number < 1
   or v.version_number > v.n
   or (v.version_number < v.n and nxt.version_number is null)
   or (v.version_number < v.n and (v.valid_to is null or v.valid_to <> nxt.valid_from))
   or (
       nxt.version_number is not null
       and (v.name = nxt.name or (v.name is null and nxt.name is null))
       and (v.popularity = nxt.popularity or (v.popularity is null and nxt.popularity is null))
       and (v.followers = nxt.followers or (v.followers is null and nxt.followers is null))
   )
