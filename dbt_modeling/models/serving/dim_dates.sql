-- Calendar covering every date of the data: session days, user sign-ups and likes (macro date_dimension).
{% set all_days %}
        select cast(session_start_time as date) as d from {{ ref('stg_sessions') }}
        union all
        select cast(liked_since as date) from {{ ref('stg_sessions') }}
        union all
        select cast(user_since as date) from {{ ref('stg_users') }}
{% endset %}
{{ date_dimension(all_days, columns=['date_key', 'date_day', 'year', 'quarter', 'month', 'day_of_month',
                                     'day_of_week', 'iso_week', 'year_month', 'is_weekend']) }}
