-- Dimension: one row per office (stg_offices holds each office_code's latest version).
select
    office_code,
    city,
    phone,
    address_line1,
    address_line2,
    state,
    country,
    postal_code,
    territory
from {{ ref('stg_offices') }}
