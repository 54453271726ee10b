-- Every version of every album, typed: the Iceberg table keeps them all (a run appends an album again only when
-- it changed). lake_version numbers the versions of an album_id from 1, in version order: ingest_on, then
-- processing_timestamp, then the landing object as a deterministic tie-break; is_latest marks the last one.
-- release_year is the year of release_date (`YYYY-MM-DD`, or `YYYY` when the precision is a year); release_day
-- the date itself when the precision is a day, null otherwise.
with numbered as (
    select
        t.*,
        row_number() over (
            partition by album_id
            order by ingest_on, processing_timestamp, source_object
        ) as lake_version,
        count(*) over (partition by album_id) as lake_versions
    from {{ source('spotify', 'albums') }} as t
)
select
    album_id,
    name,
    album_type,
    release_date,
    release_date_precision,
    cast(nullif(substring(release_date, 1, 4), '') as integer) as release_year,
    cast(case when release_date_precision = 'day' and length(release_date) = 10 then release_date end as date)
                                                             as release_day,
    cast(total_tracks as integer)                            as total_tracks,
    cast(popularity as integer)                              as popularity,
    nullif(label, '')                                        as label,
    artist_id,
    cast(ingest_on as date)                                  as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp,
    source_object,
    record_hash,
    cast(lake_version as integer)                            as lake_version,
    case when lake_version = lake_versions then true else false end as is_latest
from numbered
