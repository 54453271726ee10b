-- One row per payment (customer_number, check_number): its latest version (latest ingest_on, then latest
-- processing, then latest landing object as a deterministic tie-break). amount stays an exact DECIMAL(10,2).
with ranked as (
    select
        t.*,
        row_number() over (
            partition by customer_number, check_number
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('classicmodels', 'payments') }} as t
)
select
    cast(customer_number as integer)                         as customer_number,
    check_number,
    cast(payment_date as date)                               as payment_date,
    cast(amount as decimal(10, 2))                           as amount,
    cast(ingest_on as date)                                  as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp
from ranked
where rn = 1
