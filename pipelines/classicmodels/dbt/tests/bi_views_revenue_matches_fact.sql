-- Each BI view's total revenue and quantity add up to the fact's non-cancelled lines: no line is lost to a join
-- (a product or date missing from its dimension) nor counted twice. Returns the views that differ.
with fact as (
    select sum(line_amount) as revenue, sum(quantity_ordered) as quantity
    from {{ ref('fact_orders') }}
    where status <> 'Cancelled'
),
views as (
    select 'sales_by_product_line_monthly' as view_name, sum(revenue) as revenue, sum(quantity) as quantity
    from {{ ref('sales_by_product_line_monthly') }}
    union all
    select 'sales_by_country_monthly', sum(revenue), sum(quantity)
    from {{ ref('sales_by_country_monthly') }}
)
select
    views.view_name,
    views.revenue  as view_revenue,
    fact.revenue   as fact_revenue,
    views.quantity as view_quantity,
    fact.quantity  as fact_quantity
from views cross join fact
where coalesce(views.revenue, 0) <> coalesce(fact.revenue, 0)
   or coalesce(views.quantity, 0) <> coalesce(fact.quantity, 0)
