-- Dimension: one row per distinct start_time of songplays, broken into calendar units (UTC).
-- week is the ISO week; weekday is 0 = Sunday .. 6 = Saturday (extract(dow), the same on DuckDB and Redshift).
with times as (
    select distinct start_time
    from {{ ref('songplays') }}
)
select
    start_time,
    cast(extract(hour from start_time) as integer)   as hour,
    cast(extract(day from start_time) as integer)    as day,
    cast(extract(week from start_time) as integer)   as week,
    cast(extract(month from start_time) as integer)  as month,
    cast(extract(year from start_time) as integer)   as year,
    cast(extract(dow from start_time) as integer)    as weekday
from times
