-- One row per order line (order_number, product_code): its latest version (latest ingest_on, then latest
-- processing, then latest landing object as a deterministic tie-break). order_date is the order's date, landed
-- with the line. price_each stays an exact DECIMAL(10,2).
with ranked as (
    select
        t.*,
        row_number() over (
            partition by order_number, product_code
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('classicmodels', 'orderdetails') }} as t
)
select
    cast(order_number as integer)                            as order_number,
    product_code,
    cast(quantity_ordered as integer)                        as quantity_ordered,
    cast(price_each as decimal(10, 2))                       as price_each,
    cast(order_line_number as integer)                       as order_line_number,
    cast(order_date as date)                                 as order_date,
    cast(ingest_on as date)                                  as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp
from ranked
where rn = 1
