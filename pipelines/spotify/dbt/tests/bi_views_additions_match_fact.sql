-- The BI views' additions add up to the fact: top_artists over the additions that have an artist, top_genres over
-- all of them. No addition is lost to a join or counted twice (an artist has several rows in dim_artists: only
-- its current one may join). Returns the views that differ.
with fact as (
    select
        count(*)          as additions,
        count(artist_id)  as with_artist
    from {{ ref('fact_playlist_additions') }}
),
views as (
    select 'top_artists' as view_name, coalesce(sum(additions), 0) as additions
    from {{ ref('top_artists') }}
    union all
    select 'top_genres', coalesce(sum(additions), 0)
    from {{ ref('top_genres') }}
)
select
    views.view_name,
    views.additions as view_additions,
    case when views.view_name = 'top_artists' then fact.with_artist else fact.additions end as fact_additions
from views cross join fact
where views.additions <> case when views.view_name = 'top_artists' then fact.with_artist else fact.additions end
