-- Dimension: one row per employee (latest version), with the city, country and territory of their office.
-- left join: an employee whose office has not landed keeps its row, with null office attributes.
select
    e.employee_number,
    e.first_name,
    e.last_name,
    e.extension,
    e.email,
    e.job_title,
    e.reports_to,
    e.office_code,
    o.city       as office_city,
    o.country    as office_country,
    o.territory  as office_territory
from {{ ref('stg_employees') }} as e
left join {{ ref('stg_offices') }} as o
    on o.office_code = e.office_code
