-- Every version of every artist, typed: the Iceberg table keeps them all (a run appends an artist again only
-- when it changed). lake_version numbers the versions of an artist_id from 1, in version order: ingest_on, then
-- processing_timestamp, then the landing object as a deterministic tie-break; is_latest marks the last one.
-- Consecutive versions may agree on the attributes dim_artists tracks (a version appended for a change of
-- another column, primary_genre): dim_artists collapses them.
with numbered as (
    select
        t.*,
        row_number() over (
            partition by artist_id
            order by ingest_on, processing_timestamp, source_object
        ) as lake_version,
        count(*) over (partition by artist_id) as lake_versions
    from {{ source('spotify', 'artists') }} as t
)
select
    artist_id,
    name,
    nullif(primary_genre, '')                                as primary_genre,
    cast(popularity as integer)                              as popularity,
    cast(followers as bigint)                                as followers,
    cast(ingest_on as date)                                  as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp,
    source_object,
    record_hash,
    cast(lake_version as integer)                            as lake_version,
    case when lake_version = lake_versions then true else false end as is_latest
from numbered
