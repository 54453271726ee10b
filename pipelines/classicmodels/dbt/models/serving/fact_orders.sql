-- Fact: one row per order line (order_number, product_code), at its latest version (stg_orderdetails).
-- order_line_key is the md5 surrogate key (macro surrogate_key) of that natural key, stable across builds.
-- The order gives the customer, the dates and the status; the customer's current sales rep is the employee, and
-- that rep's office the office (both null for a customer without a sales rep). order_date_key (yyyymmdd, to
-- dim_dates) is the order's date, or the line's own copy of it when its order has not landed.
-- line_amount = quantity_ordered * price_each, an exact decimal (DECIMAL(18,2); no floating point).
-- left joins: a line whose order, customer or rep has not landed keeps its row (the not_null and relationships
-- tests then fail on it), so revenue is never lost silently.
select
    {{ surrogate_key(['d.order_number', 'd.product_code']) }} as order_line_key,
    d.order_number,
    d.order_line_number,
    d.product_code,
    o.customer_number,
    c.sales_rep_employee_number                                  as employee_number,
    e.office_code,
    {{ date_key('coalesce(o.order_date, d.order_date)') }}        as order_date_key,
    coalesce(o.order_date, d.order_date)                         as order_date,
    o.required_date,
    o.shipped_date,
    o.status,
    d.quantity_ordered,
    d.price_each,
    cast(d.quantity_ordered * d.price_each as decimal(18, 2))    as line_amount
from {{ ref('stg_orderdetails') }} as d
left join {{ ref('stg_orders') }} as o
    on o.order_number = d.order_number
left join {{ ref('stg_customers') }} as c
    on c.customer_number = o.customer_number
left join {{ ref('stg_employees') }} as e
    on e.employee_number = c.sales_rep_employee_number
