-- Calendar: every day from the first to the last day a track was added to a playlist (stg_playlist_tracks).
-- date_key is yyyymmdd (macro date_key); day_of_week is 0 = Sunday .. 6 = Saturday (extract(dow), the same on
-- DuckDB and Redshift); iso_week is the ISO week; month_start is the first day of the month (dbt.date_trunc).
with bounds as (
    select
        min(d) as start_day,
        max(d) as end_day
    from (
        select cast(added_at as date) as d from {{ ref('stg_playlist_tracks') }}
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
    case cast(extract(month from date_day) as integer)
        when 1 then 'January' when 2 then 'February' when 3 then 'March' when 4 then 'April'
        when 5 then 'May' when 6 then 'June' when 7 then 'July' when 8 then 'August'
        when 9 then 'September' when 10 then 'October' when 11 then 'November' else 'December'
    end as month_name,
    cast({{ dbt.date_trunc('month', 'date_day') }} as date) as month_start,
    cast(extract(year from date_day) as integer) * 100 + cast(extract(month from date_day) as integer) as year_month,
    cast(extract(day from date_day) as integer) as day_of_month,
    cast(extract(dow from date_day) as integer) as day_of_week,  -- 0 = Sunday
    case cast(extract(dow from date_day) as integer)
        when 0 then 'Sunday' when 1 then 'Monday' when 2 then 'Tuesday' when 3 then 'Wednesday'
        when 4 then 'Thursday' when 5 then 'Friday' else 'Saturday'
    end as day_name,
    cast(extract(week from date_day) as integer) as iso_week,
    case when extract(dow from date_day) in (0, 6) then true else false end as is_weekend
from days
