{{ config(**bi_view_config()) }}
-- Sales per customer country per month (month of the order date). Cancelled orders are left out; every other
-- status counts. A line whose customer has not landed has no country: 'unknown' until it lands. revenue is the
-- exact sum of line_amount; orders the distinct orders; quantity the units ordered.
select
    dim_dates.year          as order_year,
    dim_dates.month         as order_month,
    dim_dates.month_start,
    coalesce(dim_customers.country, 'unknown')    as country,
    sum(fact_orders.line_amount)                  as revenue,
    count(distinct fact_orders.order_number)      as orders,
    sum(fact_orders.quantity_ordered)             as quantity
from {{ ref('fact_orders') }} as fact_orders
left join {{ ref('dim_customers') }} as dim_customers
    on dim_customers.customer_number = fact_orders.customer_number
join {{ ref('dim_dates') }} as dim_dates
    on dim_dates.date_key = fact_orders.order_date_key
where fact_orders.status <> 'Cancelled'
group by dim_dates.year, dim_dates.month, dim_dates.month_start, coalesce(dim_customers.country, 'unknown')
