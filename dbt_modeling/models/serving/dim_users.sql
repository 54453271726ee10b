-- One row per user (latest version; the history is in the snap_users snapshot), plus one inferred member per user
-- that session items reference but whose record has not landed yet (a late-arriving dimension member): its
-- attributes are unknown (null) and is_inferred is true. The key is the same md5 of user_id either way, so when
-- the user's record lands the next build (the dim is a table, rebuilt every run) replaces the inferred member by
-- the real one and the fact rows pointing at it need no change.
with users as (
    select
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
),

inferred as (
    select distinct sessions.user_id
    from {{ ref('stg_sessions') }} as sessions
    left join users
        on users.user_id = sessions.user_id
    where sessions.user_id is not null
      and users.user_id is null
)

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
    ingest_on,
    false as is_inferred
from users

union all

select
    {{ surrogate_key(['user_id']) }} as user_key,
    user_id,
    cast(null as {{ dbt.type_string() }}) as first_name,
    cast(null as {{ dbt.type_string() }}) as last_name,
    cast(null as {{ dbt.type_timestamp() }}) as user_since,
    cast(null as {{ dbt.type_string() }}) as place_name,
    cast(null as {{ dbt.type_string() }}) as country_code,
    cast(null as double precision) as latitude,
    cast(null as double precision) as longitude,
    cast(null as {{ dbt.type_string() }}) as timezone,
    cast(null as date) as ingest_on,
    true as is_inferred
from inferred
