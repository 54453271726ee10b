-- Calendar covering every date of the data: session days, user sign-ups and likes.
with bounds as (
    select
        min(d) as start_day,
        max(d) as end_day
    from (
        select cast(session_start_time as date) as d from {{ ref('stg_sessions') }}
        union all
        select cast(liked_since as date) from {{ ref('stg_sessions') }}
        union all
        select cast(user_since as date) from {{ ref('stg_users') }}
    ) as all_days
    where d is not null
),
digits as (
    select 0 as n union all select 1 union all select 2 union all select 3 union all select 4
    union all select 5 union all select 6 union all select 7 union all select 8 union all select 9
),
numbers as (  -- 0 .. 9999 days (about 27 years)
    select d1.n + 10 * d2.n + 100 * d3.n + 1000 * d4.n as n
    from digits d1 cross join digits d2 cross join digits d3 cross join digits d4
),
days as (
    select cast({{ dbt.dateadd('day', 'numbers.n', 'bounds.start_day') }} as date) as date_day
    from numbers
    cross join bounds
    where numbers.n <= {{ dbt.datediff('bounds.start_day', 'bounds.end_day', 'day') }}
)
select
    {{ date_key('date_day') }} as date_key,
    date_day,
    cast(extract(year from date_day) as integer) as year,
    cast(extract(quarter from date_day) as integer) as quarter,
    cast(extract(month from date_day) as integer) as month,
    cast(extract(day from date_day) as integer) as day_of_month,
    cast(extract(dow from date_day) as integer) as day_of_week,  -- 0 = Sunday
    cast(extract(week from date_day) as integer) as iso_week,
    cast(extract(year from date_day) as integer) * 100 + cast(extract(month from date_day) as integer) as year_month,
    case when extract(dow from date_day) in (0, 6) then true else false end as is_weekend
from days
