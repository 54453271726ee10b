-- One row per customer_number: its latest version (latest ingest_on, then latest processing, then latest landing
-- object as a deterministic tie-break). Typed only; sales_rep_employee_number is null for a customer without a
-- sales rep.
with ranked as (
    select
        t.*,
        row_number() over (
            partition by customer_number
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('classicmodels', 'customers') }} as t
)
select
    cast(customer_number as integer)                         as customer_number,
    customer_name,
    nullif(contact_last_name, '')                            as contact_last_name,
    nullif(contact_first_name, '')                           as contact_first_name,
    nullif(phone, '')                                        as phone,
    nullif(address_line1, '')                                as address_line1,
    nullif(address_line2, '')                                as address_line2,
    nullif(city, '')                                         as city,
    nullif(state, '')                                        as state,
    nullif(postal_code, '')                                  as postal_code,
    country,
    cast(sales_rep_employee_number as integer)               as sales_rep_employee_number,
    cast(credit_limit as decimal(10, 2))                     as credit_limit,
    cast(ingest_on as date)                                  as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp
from ranked
where rn = 1
