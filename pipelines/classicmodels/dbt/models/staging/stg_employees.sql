-- One row per employee_number: its latest version (latest ingest_on, then latest processing, then latest landing
-- object as a deterministic tie-break). Typed only; reports_to is null for the top of the hierarchy.
with ranked as (
    select
        t.*,
        row_number() over (
            partition by employee_number
            order by ingest_on desc, processing_timestamp desc, source_object desc
        ) as rn
    from {{ source('classicmodels', 'employees') }} as t
)
select
    cast(employee_number as integer)                         as employee_number,
    last_name,
    nullif(first_name, '')                                   as first_name,
    nullif(extension, '')                                    as extension,
    nullif(email, '')                                        as email,
    office_code,
    cast(reports_to as integer)                              as reports_to,
    nullif(job_title, '')                                    as job_title,
    cast(ingest_on as date)                                  as ingest_on,
    cast(processing_timestamp as {{ dbt.type_timestamp() }}) as processing_timestamp
from ranked
where rn = 1
