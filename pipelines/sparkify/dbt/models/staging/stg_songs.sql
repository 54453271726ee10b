-- One row per song_id: its latest version (latest ingest_on, then latest processing, then latest landing object
-- as a deterministic tie-break). Typed and cleaned only: empty strings become null, year 0 (unknown) becomes null.
with ranked as (
    select
        s.*,
        row_number() over (
            partition by song_id
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('sparkify', 'staging_songs') }} as s
)
select
    song_id,
    cast(num_songs as integer)                      as num_songs,
    title,
    artist_id,
    artist_name,
    nullif(artist_location, '')                     as artist_location,
    cast(artist_latitude as double precision)       as artist_latitude,
    cast(artist_longitude as double precision)      as artist_longitude,
    cast(duration as double precision)              as duration,
    cast(nullif(year, 0) as integer)                as year,
    cast(ingest_on as date)                         as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp
from ranked
where rn = 1
