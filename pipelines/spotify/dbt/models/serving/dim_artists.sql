-- Type-2 slowly changing dimension of the artists, built from the versions the Iceberg table keeps
-- (stg_artist_versions), not from dbt snapshots: the lake already holds the history, and every build recomputes
-- the same rows from it (macro scd2_versions).
-- Tracked attributes: name, popularity, followers. A lake version opens a new row when it is the artist's first
-- or when one of them differs (null-safe) from the lake version just before it; otherwise (a version appended for
-- a change of an untracked column, or an identical one) it extends the open row: consecutive versions with the
-- same tracked attributes collapse into one. A value that changed and changed back is two changes
-- (popularity 50 -> 61 -> 50: three rows).
-- One row per artist version: version_number 1, 2, .. in version order; artist_version_key the md5 (macro
-- surrogate_key) of (artist_id, version_number), stable across builds (the lake appends later versions only).
-- valid_from is the processing_timestamp of the lake version that opened the row; valid_to the next row's
-- valid_from (null for the current row); is_current exactly when valid_to is null. lake_versions counts the lake
-- versions the row stands for.
-- primary_genre is not tracked (type 1): every row carries the artist's latest value.
with {{ scd2_versions(ref('stg_artist_versions'), 'artist_id', ['name', 'popularity', 'followers']) }},
latest as (
    select artist_id, primary_genre, lake_version as last_lake_version
    from {{ ref('stg_artist_versions') }}
    where is_latest
)
select
    {{ surrogate_key(['v.artist_id', 'v.version_number']) }} as artist_version_key,
    v.artist_id,
    v.version_number,
    v.name,
    l.primary_genre,
    v.popularity,
    v.followers,
    v.valid_from,
    v.valid_to,
    case when v.valid_to is null then true else false end   as is_current,
    v.first_ingest_on,
    cast(coalesce(v.next_lake_version, l.last_lake_version + 1) - v.lake_version as integer) as lake_versions
from versions as v
inner join latest as l
    on l.artist_id = v.artist_id
