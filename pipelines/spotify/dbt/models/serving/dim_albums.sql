-- Type-2 slowly changing dimension of the albums, built from the versions the Iceberg table keeps
-- (stg_album_versions), not from dbt snapshots: the lake already holds the history, and every build recomputes
-- the same rows from it. The same design as dim_artists (macro scd2_versions):
-- Tracked attributes: name, popularity. A lake version opens a new row when it is the album's first or when one
-- of them differs (null-safe) from the lake version just before it; otherwise it extends the open row:
-- consecutive versions with the same tracked attributes collapse into one, and a value that changed and changed
-- back is two changes.
-- One row per album version: version_number 1, 2, .. in version order; album_version_key the md5 (macro
-- surrogate_key) of (album_id, version_number). valid_from is the processing_timestamp of the lake version that
-- opened the row; valid_to the next row's valid_from (null for the current row); is_current exactly when valid_to
-- is null. lake_versions counts the lake versions the row stands for.
-- The other attributes (album_type, release date, total_tracks, label, artist_id) are not tracked (type 1):
-- every row carries the album's latest values.
with {{ scd2_versions(ref('stg_album_versions'), 'album_id', ['name', 'popularity']) }},
latest as (
    select
        album_id,
        album_type,
        release_date,
        release_date_precision,
        release_year,
        release_day,
        total_tracks,
        label,
        artist_id,
        lake_version as last_lake_version
    from {{ ref('stg_album_versions') }}
    where is_latest
)
select
    {{ surrogate_key(['v.album_id', 'v.version_number']) }} as album_version_key,
    v.album_id,
    v.version_number,
    v.name,
    l.album_type,
    l.release_date,
    l.release_date_precision,
    l.release_year,
    l.release_day,
    l.total_tracks,
    l.label,
    l.artist_id,
    v.popularity,
    v.valid_from,
    v.valid_to,
    case when v.valid_to is null then true else false end  as is_current,
    v.first_ingest_on,
    cast(coalesce(v.next_lake_version, l.last_lake_version + 1) - v.lake_version as integer) as lake_versions
from versions as v
inner join latest as l
    on l.album_id = v.album_id
