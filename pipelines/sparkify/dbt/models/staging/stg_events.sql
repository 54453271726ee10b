-- Every app event, one row per (session_id, item_in_session): its latest version (latest ingest_on, then latest
-- processing, then latest landing object as a deterministic tie-break). Typed and cleaned only: empty strings
-- become null (user_id is '' for logged-out events); every page is kept (songplays keeps NextSong).
with ranked as (
    select
        e.*,
        row_number() over (
            partition by session_id, item_in_session
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('sparkify', 'staging_events') }} as e
)
select
    cast(session_id as bigint)                              as session_id,
    cast(item_in_session as integer)                        as item_in_session,
    cast(ts as {{ dbt.type_timestamp() }})                  as ts,
    nullif(trim(user_id), '')                               as user_id,
    nullif(first_name, '')                                  as first_name,
    nullif(last_name, '')                                   as last_name,
    nullif(gender, '')                                      as gender,
    nullif(level, '')                                       as level,
    nullif(auth, '')                                        as auth,
    nullif(page, '')                                        as page,
    nullif(method, '')                                      as method,
    cast(status as integer)                                 as status,
    nullif(song, '')                                        as song,
    nullif(artist, '')                                      as artist,
    cast(length as double precision)                        as length,
    nullif(location, '')                                    as location,
    nullif(user_agent, '')                                  as user_agent,
    cast(registration as bigint)                            as registration,
    cast(ingest_on as date)                                 as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp
from ranked
where rn = 1
