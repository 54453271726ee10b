{#- Calendar dimension, shared by the date dims of dbt_modeling/ and the pipelines' dbt projects: one row per
    day from the first to the last non-null `d` of `days_sql` (a query with one date column named d), at most
    10000 days (about 27 years). `columns` picks the output columns, in order (default: all of them).
    date_key is yyyymmdd (macro date_key); day_of_week is 0 = Sunday .. 6 = Saturday (extract(dow), the same
    on DuckDB and Redshift); iso_week is the ISO week; month_start is the first day of the month. -#}
{% macro date_dimension(days_sql, columns=none) -%}
{%- set exprs = {
    'date_key': date_key('date_day'),
    'date_day': 'date_day',
    'year': 'cast(extract(year from date_day) as integer)',
    'quarter': 'cast(extract(quarter from date_day) as integer)',
    'month': 'cast(extract(month from date_day) as integer)',
    'month_name': "case cast(extract(month from date_day) as integer)
        when 1 then 'January' when 2 then 'February' when 3 then 'March' when 4 then 'April'
        when 5 then 'May' when 6 then 'June' when 7 then 'July' when 8 then 'August'
        when 9 then 'September' when 10 then 'October' when 11 then 'November' else 'December'
    end",
    'month_start': 'cast(' ~ dbt.date_trunc('month', 'date_day') ~ ' as date)',
    'year_month': 'cast(extract(year from date_day) as integer) * 100 + cast(extract(month from date_day) as integer)',
    'day_of_month': 'cast(extract(day from date_day) as integer)',
    'day_of_week': 'cast(extract(dow from date_day) as integer)',
    'day_name': "case cast(extract(dow from date_day) as integer)
        when 0 then 'Sunday' when 1 then 'Monday' when 2 then 'Tuesday' when 3 then 'Wednesday'
        when 4 then 'Thursday' when 5 then 'Friday' else 'Saturday'
    end",
    'iso_week': 'cast(extract(week from date_day) as integer)',
    'is_weekend': 'case when extract(dow from date_day) in (0, 6) then true else false end',
} -%}
{%- if columns is none -%}
  {%- set columns = ['date_key', 'date_day', 'year', 'quarter', 'month', 'month_name', 'month_start',
                     'year_month', 'day_of_month', 'day_of_week', 'day_name', 'iso_week', 'is_weekend'] -%}
{%- endif -%}
with bounds as (
    select
        min(d) as start_day,
        max(d) as end_day
    from (
        {{ days_sql }}
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
{%- for column in columns %}
    {{ exprs[column] }} as {{ column }}{% if not loop.last %},{% endif %}
{%- endfor %}
from days
{%- endmacro %}
