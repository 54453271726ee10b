{#- The type-2 rows of an entity from the versions its Iceberg table keeps (a staging model with `key`, the
    `tracked` columns, ingest_on, processing_timestamp and lake_version 1, 2, .. per key): the CTEs ordered,
    opened and versions, for a model's `with` (spotify's dim_artists and dim_albums).
    A lake version opens a new row when it is the key's first or when one of the tracked columns differs
    (null-safe) from the lake version just before it; otherwise it extends the open row: consecutive versions
    with the same tracked values collapse into one, and a value that changed and changed back is two changes.
    versions: key, version_number (1, 2, .. in version order), the tracked columns, valid_from (the
    processing_timestamp of the lake version that opened the row), valid_to (the next row's valid_from, null for
    the current row), first_ingest_on, lake_version and next_lake_version (the next row's, null for the current
    row). -#}
{% macro scd2_versions(relation, key, tracked) -%}
ordered as (
    select
        {{ key }},
        {%- for col in tracked %}
        {{ col }},
        {%- endfor %}
        ingest_on,
        processing_timestamp,
        lake_version
        {%- for col in tracked %},
        lag({{ col }}) over (partition by {{ key }} order by lake_version) as prev_{{ col }}
        {%- endfor %}
    from {{ relation }}
),
opened as (
    select *
    from ordered
    where case
              when lake_version = 1 then 1
              when {% for col in tracked -%}
                   {% if not loop.first %} and {% endif -%}
                   ({{ col }} = prev_{{ col }} or ({{ col }} is null and prev_{{ col }} is null))
                   {% endfor -%}
                  then 0
              else 1
          end = 1
),
versions as (
    select
        {{ key }},
        cast(row_number() over (partition by {{ key }} order by lake_version) as integer) as version_number,
        {%- for col in tracked %}
        {{ col }},
        {%- endfor %}
        processing_timestamp                                                    as valid_from,
        lead(processing_timestamp) over (partition by {{ key }} order by lake_version) as valid_to,
        ingest_on                                                               as first_ingest_on,
        lake_version,
        lead(lake_version) over (partition by {{ key }} order by lake_version)         as next_lake_version
    from opened
)
{%- endmacro %}
