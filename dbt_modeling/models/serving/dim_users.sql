-- One row per user (latest version; the history is in the snap_users snapshot).
select
    {{ surrogate_key(['user_id']) }} as user_key,
    user_id,
    first_name,
    last_name,
    user_since,
    place_name,
    country_code,
    latitude,
    longitude,
    timezone,
    ingest_on
from {{ ref('stg_users') }}
