{{ config(**bi_view_config()) }}
-- Sales per country per month (month of the session start, country of the buyer).
select
    dim_dates.year as session_year,
    dim_dates.month as session_month,
    dim_users.country_code,
    count(*) as items_sold,
    sum(fact_session.price) as total_sales
from {{ ref('fact_session') }} as fact_session
join {{ ref('dim_users') }} as dim_users
    on dim_users.user_key = fact_session.user_key
join {{ ref('dim_dates') }} as dim_dates
    on dim_dates.date_key = fact_session.date_key
group by dim_dates.year, dim_dates.month, dim_users.country_code
