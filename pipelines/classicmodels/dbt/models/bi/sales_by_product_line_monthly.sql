{{ config(**bi_view_config()) }}
-- Sales per product line per month (month of the order date). Cancelled orders are left out; every other
-- status counts. revenue is the exact sum of line_amount; orders the distinct orders with a line of the product
-- line; quantity the units ordered.
select
    dim_dates.year          as order_year,
    dim_dates.month         as order_month,
    dim_dates.month_start,
    dim_products.product_line,
    sum(fact_orders.line_amount)                  as revenue,
    count(distinct fact_orders.order_number)      as orders,
    sum(fact_orders.quantity_ordered)             as quantity
from {{ ref('fact_orders') }} as fact_orders
join {{ ref('dim_products') }} as dim_products
    on dim_products.product_code = fact_orders.product_code
join {{ ref('dim_dates') }} as dim_dates
    on dim_dates.date_key = fact_orders.order_date_key
where fact_orders.status <> 'Cancelled'
group by dim_dates.year, dim_dates.month, dim_dates.month_start, dim_products.product_line
