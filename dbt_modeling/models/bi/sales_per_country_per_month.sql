{{ config(**bi_view_config()) }}
-- Sales per country per month (month of the session start, country of the buyer). A buyer whose record has not
-- landed yet (an inferred member of dim_users) has no country: 'unknown' until the record lands.
select
    dim_dates.year as session_year,
    dim_dates.month as session_month,
    coalesce(dim_users.country_code, 'unknown') as country_code,
    count(*) as items_sold,
    sum(fact_session.price) as total_sales
from {{ ref('fact_session') }} as fact_session
join {{ ref('dim_users') }} as dim_users
    on dim_users.user_key = fact_session.user_key
join {{ ref('dim_dates') }} as dim_dates
    on dim_dates.date_key = fact_session.date_key
group by dim_dates.year, dim_dates.month, coalesce(dim_users.country_code, 'unknown')
