-- fact_orders holds exactly the current order lines of the source: as many rows as there are (order_number,
-- product_code) at their latest version, and sum(line_amount) equal to sum(quantity_ordered * price_each) over
-- them, exactly (decimals, no rounding). Computed here from the source itself, so neither the staging view nor
-- the fact's joins can lose, duplicate or round lines unnoticed. Returns a row (fails) when they differ.
with latest as (
    select
        quantity_ordered,
        price_each,
        row_number() over (
            partition by order_number, product_code
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('classicmodels', 'orderdetails') }}
),
expected as (
    select
        count(*) as n,
        coalesce(sum(cast(quantity_ordered as decimal(18, 2)) * cast(price_each as decimal(10, 2))), 0) as amount
    from latest
    where rn = 1
),
actual as (
    select count(*) as n, coalesce(sum(line_amount), 0) as amount
    from {{ ref('fact_orders') }}
)
select
    expected.n      as orderdetails_lines,
    actual.n        as fact_lines,
    expected.amount as orderdetails_amount,
    actual.amount   as fact_amount
from expected cross join actual
where expected.n <> actual.n
   or expected.amount <> actual.amount
