-- One row per product_code: its latest version (latest ingest_on, then latest processing, then latest landing
-- object as a deterministic tie-break). Prices stay exact decimals (DECIMAL(10,2)).
with ranked as (
    select
        t.*,
        row_number() over (
            partition by product_code
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('classicmodels', 'products') }} as t
)
select
    product_code,
    product_name,
    product_line,
    nullif(product_scale, '')                                as product_scale,
    nullif(product_vendor, '')                               as product_vendor,
    nullif(product_description, '')                          as product_description,
    cast(quantity_in_stock as integer)                       as quantity_in_stock,
    cast(buy_price as decimal(10, 2))                        as buy_price,
    cast(msrp as decimal(10, 2))                             as msrp,
    cast(ingest_on as date)                                  as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp
from ranked
where rn = 1
