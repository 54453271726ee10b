-- One row per product_line: its latest version (latest ingest_on, then latest processing, then latest landing
-- object as a deterministic tie-break).
with ranked as (
    select
        t.*,
        row_number() over (
            partition by product_line
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('classicmodels', 'productlines') }} as t
)
select
    product_line,
    nullif(text_description, '')                             as text_description,
    cast(ingest_on as date)                                  as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp
from ranked
where rn = 1
