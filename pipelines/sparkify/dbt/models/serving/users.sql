-- Dimension: one row per logged-in user, with the names, gender and level of their latest event (by ts; ties
-- broken by the later session and item, so that the choice is deterministic). Every event counts, not only
-- plays: a user's level changes on the upgrade/downgrade pages.
with ranked as (
    select
        user_id,
        first_name,
        last_name,
        gender,
        level,
        row_number() over (
            partition by user_id
            order by ts desc, session_id desc, item_in_session desc
        ) as rn
    from {{ ref('stg_events') }}
    where user_id is not null
)
select user_id, first_name, last_name, gender, level
from ranked
where rn = 1
