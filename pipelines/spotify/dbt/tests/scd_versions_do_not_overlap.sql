-- The versions of one artist (dim_artists) or one album (dim_albums) do not overlap: no two rows of the same key
-- share an instant of [valid_from, valid_to) (an open row, valid_to null, runs to the end of time). Returns the
-- pairs that overlap.
with intervals as (
    select
        'dim_artists'                                                        as dim,
        artist_id                                                            as natural_key,
        version_number,
        valid_from,
        coalesce(valid_to, cast('9999-12-31 00:00:00' as {{ dbt.type_timestamp() }})) as valid_until
    from {{ ref('dim_artists') }}
    union all
    select
        'dim_albums',
        album_id,
        version_number,
        valid_from,
        coalesce(valid_to, cast('9999-12-31 00:00:00' as {{ dbt.type_timestamp() }}))
    from {{ ref('dim_albums') }}
)
select
    a.dim,
    a.natural_key,
    a.version_number  as version_a,
    a.valid_from      as valid_from_a,
    a.valid_until     as valid_until_a,
    b.version_number  as version_b,
    b.valid_from      as valid_from_b,
    b.valid_until     as valid_until_b
from intervals as a
inner join intervals as b
    on b.dim = a.dim
   and b.natural_key = a.natural_key
   and b.version_number > a.version_number
where a.valid_from < b.valid_until
  and b.valid_from < a.valid_until
