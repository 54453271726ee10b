-- fact_playlist_additions holds exactly the playlist additions of the source: one row per (playlist_id,
-- track_id, added_at), however many versions the Iceberg table holds of it. Counted here from the source itself,
-- so neither the staging view nor the fact's joins (a track or artist with several rows) can lose or duplicate
-- additions unnoticed. Returns a row (fails) when the counts differ.
with expected as (
    select count(*) as n
    from (
        select distinct playlist_id, track_id, added_at
        from {{ source('spotify', 'playlist_tracks') }}
    ) as additions
),
actual as (
    select count(*) as n from {{ ref('fact_playlist_additions') }}
)
select expected.n as source_additions, actual.n as fact_additions
from expected cross join actual
where expected.n <> actual.n
