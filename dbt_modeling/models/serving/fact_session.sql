-- Grain: one purchased song in one session (session_id, item_index).
-- Incremental by ingest_on: a run adds only the windows newer than what the fact already holds.
{{ config(
    materialized='incremental',
    unique_key='session_item_key',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    dist='user_key',
    sort=['session_start_time']
) }}

with items as (
    select *
    from {{ ref('stg_sessions') }}
    {% if deftunes_is_incremental() %}
    where ingest_on > (select coalesce(max(ingest_on), cast('1900-01-01' as date)) from {{ this }})
    {% endif %}
),

songs as (
    select track_id, artist_id
    from {{ ref('stg_songs') }}
)

select
    {{ surrogate_key(['items.session_id', 'items.item_index']) }} as session_item_key,
    {{ surrogate_key(['items.user_id']) }} as user_key,
    {{ surrogate_key(['items.track_id']) }} as song_key,
    {{ surrogate_key(['coalesce(songs.artist_id, items.artist_id)']) }} as artist_key,
    {{ date_key('items.session_start_time') }} as date_key,
    items.session_id,
    items.item_index,
    items.price,
    items.currency,
    items.liked,
    items.liked_since,
    items.session_start_time,
    items.ingest_on
from items
-- left join: an item whose track is missing keeps its row and fails the relationships test instead of vanishing
left join songs
    on songs.track_id = items.track_id
