-- Calendar: every day from the first to the last order date (of the current order lines and orders); columns
-- and their meaning: macro date_dimension.
{% set all_days %}
        select order_date as d from {{ ref('stg_orderdetails') }}
        union all
        select order_date from {{ ref('stg_orders') }}
{% endset %}
{{ date_dimension(all_days) }}
