{{ config(**bi_view_config()) }}
-- Sales per artist per year (year of the session start).
select
    dim_dates.year as session_year,
    dim_artists.artist_id,
    dim_artists.artist_name,
    count(*) as items_sold,
    sum(fact_session.price) as total_sales
from {{ ref('fact_session') }} as fact_session
join {{ ref('dim_artists') }} as dim_artists
    on dim_artists.artist_key = fact_session.artist_key
join {{ ref('dim_dates') }} as dim_dates
    on dim_dates.date_key = fact_session.date_key
group by dim_dates.year, dim_artists.artist_id, dim_artists.artist_name
