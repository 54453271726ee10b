-- One row per (year, month, product line) in sales_by_product_line_monthly and per (year, month, country) in
-- sales_by_country_monthly. Returns the groups that appear more than once.
select 'sales_by_product_line_monthly' as view_name, order_year, order_month, product_line as grp, count(*) as n
from {{ ref('sales_by_product_line_monthly') }}
group by order_year, order_month, product_line
having count(*) > 1
union all
select 'sales_by_country_monthly', order_year, order_month, country, count(*)
from {{ ref('sales_by_country_monthly') }}
group by order_year, order_month, country
having count(*) > 1
