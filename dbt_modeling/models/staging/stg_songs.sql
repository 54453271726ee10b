-- One row per track: the latest version wins (latest ingest_on, then latest processing, then latest landing object
-- as a deterministic tie-break); the transform appends a track again only when its content changed.
-- Rename and type only; strings stay as they are (empty artist_mbid becomes null, year 0 means unknown and becomes null).
with ranked as (
    select
        s.*,
        row_number() over (
            partition by track_id
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('deftunes_transform', 'songs') }} as s
)
select
    track_id,
    song_id,
    title,
    release,
    artist_id,
    nullif(artist_mbid, '') as artist_mbid,
    artist_name,
    cast(duration as double precision)             as duration_seconds,
    cast(artist_familiarity as double precision)   as artist_familiarity,
    cast(artist_hotttnesss as double precision)    as artist_hotttnesss,
    cast(nullif(year, 0) as integer)               as release_year,
    cast(track_7digitalid as integer)              as track_7digitalid,
    cast(shs_perf as integer)                      as shs_perf,
    cast(shs_work as integer)                      as shs_work,
    cast(ingest_on as date)                        as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp
from ranked
where rn = 1
