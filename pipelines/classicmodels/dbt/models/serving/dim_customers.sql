-- Dimension: one row per customer (latest version), with its current sales rep (null when it has none) and the
-- count and exact total of its current payments (0 and 0.00 for a customer that has paid nothing yet).
with payments as (
    select
        customer_number,
        count(*)     as payment_count,
        sum(amount)  as total_payments
    from {{ ref('stg_payments') }}
    group by customer_number
)
select
    c.customer_number,
    c.customer_name,
    c.contact_first_name,
    c.contact_last_name,
    c.phone,
    c.address_line1,
    c.address_line2,
    c.city,
    c.state,
    c.postal_code,
    c.country,
    c.sales_rep_employee_number,
    c.credit_limit,
    cast(coalesce(p.payment_count, 0) as integer)            as payment_count,
    cast(coalesce(p.total_payments, 0) as decimal(18, 2))    as total_payments
from {{ ref('stg_customers') }} as c
left join payments as p
    on p.customer_number = c.customer_number
