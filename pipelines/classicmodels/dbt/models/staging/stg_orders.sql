-- One row per order_number: its latest version (latest ingest_on, then latest processing, then latest landing
-- object as a deterministic tie-break); a status change read by a full run is a later version. shipped_date is
-- null until the order ships.
with ranked as (
    select
        t.*,
        row_number() over (
            partition by order_number
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('classicmodels', 'orders') }} as t
)
select
    cast(order_number as integer)                            as order_number,
    cast(order_date as date)                                 as order_date,
    cast(required_date as date)                              as required_date,
    cast(shipped_date as date)                               as shipped_date,
    status,
    nullif(comments, '')                                     as comments,
    cast(customer_number as integer)                         as customer_number,
    cast(ingest_on as date)                                  as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp
from ranked
where rn = 1
