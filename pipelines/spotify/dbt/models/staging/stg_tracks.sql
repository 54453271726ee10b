-- One row per track_id: its latest version (latest ingest_on, then latest processing, then latest landing object
-- as a deterministic tie-break). Typed only; `explicit` (a reserved word on Redshift) becomes is_explicit.
with ranked as (
    select
        t.*,
        row_number() over (
            partition by track_id
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('spotify', 'tracks') }} as t
)
select
    track_id,
    name,
    cast(duration_ms as bigint)                              as duration_ms,
    cast({{ adapter.quote('explicit') }} as boolean)         as is_explicit,
    cast(popularity as integer)                              as popularity,
    cast(track_number as integer)                            as track_number,
    album_id,
    artist_id,
    cast(ingest_on as date)                                  as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp
from ranked
where rn = 1
