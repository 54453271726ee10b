-- songplays has exactly one row per NextSong event of the source: per (session_id, item_in_session) at its latest
-- version, as stg_events reads them. Counted here from the source itself, so neither the staging view nor the
-- song match can lose or duplicate plays unnoticed. Returns a row (fails) when the counts differ.
with latest as (
    select
        page,
        row_number() over (
            partition by session_id, item_in_session
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('sparkify', 'staging_events') }}
),
expected as (
    select count(*) as n from latest where rn = 1 and page = 'NextSong'
),
actual as (
    select count(*) as n from {{ ref('songplays') }}
)
select expected.n as nextsong_events, actual.n as songplays
from expected cross join actual
where expected.n <> actual.n
