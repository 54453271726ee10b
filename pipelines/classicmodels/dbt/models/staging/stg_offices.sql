-- One row per office_code: its latest version (latest ingest_on, then latest processing, then latest landing
-- object as a deterministic tie-break). Typed only; empty optional strings become null.
with ranked as (
    select
        t.*,
        row_number() over (
            partition by office_code
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('classicmodels', 'offices') }} as t
)
select
    office_code,
    city,
    nullif(phone, '')                                        as phone,
    nullif(address_line1, '')                                as address_line1,
    nullif(address_line2, '')                                as address_line2,
    nullif(state, '')                                        as state,
    country,
    nullif(postal_code, '')                                  as postal_code,
    nullif(territory, '')                                    as territory,
    cast(ingest_on as date)                                  as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp
from ranked
where rn = 1
