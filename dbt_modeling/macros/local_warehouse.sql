{#- The local stand-in for the Redshift Spectrum external schema, re-pointed at the start of every dbt run on
    the DuckDB target (on-run-start in dbt_project.yml), so dbt always reads the transform-zone tables at their
    current Iceberg snapshot, never a stale copy.

    The SQLite Iceberg catalog (path in DEFTUNES_CATALOG, set by run_local.sh) records each table's current
    metadata file in iceberg_tables.metadata_location. For every table of the namespace
    (DEFTUNES_CATALOG_NAMESPACE, default deftunes_transform) this makes
        create or replace view <source schema>.<table> as select * from iceberg_scan('<metadata file>')
    in the source schema (DBT_SOURCE_SCHEMA, default deftunes_transform, the name sources.yml reads), and drops
    the views of tables the catalog no longer has. The catalog is read with sqlite_scan, which opens it read-only
    and leaves nothing attached.

    On any other target it does nothing. It is also what `local/python/warehouse.py refresh` runs
    (`dbt run-operation deftunes_transform_views`), so the views are made in one place only. -#}
{% macro deftunes_transform_views() -%}
  {%- if not execute or target.type != 'duckdb' -%}
    {{ return('') }}
  {%- endif -%}
  {%- set catalog = env_var('DEFTUNES_CATALOG', '') -%}
  {%- set namespace = env_var('DEFTUNES_CATALOG_NAMESPACE', 'deftunes_transform') -%}
  {%- set schema = env_var('DBT_SOURCE_SCHEMA', 'deftunes_transform') -%}
  {%- if catalog == '' -%}
    {{ exceptions.raise_compiler_error(
        "DEFTUNES_CATALOG is not set: the local target reads the transform zone through the SQLite Iceberg "
        ~ "catalog (catalog.db); run dbt through dbt_modeling/run_local.sh or export DEFTUNES_CATALOG") }}
  {%- endif -%}

  {%- set tables_sql -%}
    select table_name, metadata_location
    from sqlite_scan({{ deftunes_sql_string(catalog) }}, 'iceberg_tables')
    where table_namespace = {{ deftunes_sql_string(namespace) }}
      and metadata_location is not null
    order by table_name
  {%- endset -%}
  {%- set tables = run_query(tables_sql) -%}
  {%- if tables.rows | length == 0 -%}
    {{ exceptions.raise_compiler_error(
        "no Iceberg tables in namespace '" ~ namespace ~ "' of the catalog " ~ catalog) }}
  {%- endif -%}

  {%- set existing_sql -%}
    select view_name from duckdb_views()
    where database_name = current_database() and schema_name = {{ deftunes_sql_string(schema) }} and not internal
  {%- endset -%}
  {%- set existing = run_query(existing_sql).columns[0].values() | list -%}

  {%- set current = [] -%}
  {%- do run_query('create schema if not exists ' ~ adapter.quote(schema)) -%}
  {%- for row in tables.rows -%}
    {%- set location = row[1] -%}
    {%- if location.startswith('file://') -%}{%- set location = location[7:] -%}{%- endif -%}
    {%- do current.append(row[0]) -%}
    {%- do run_query(
        'create or replace view ' ~ adapter.quote(schema) ~ '.' ~ adapter.quote(row[0])
        ~ ' as select * from iceberg_scan(' ~ deftunes_sql_string(location) ~ ')') -%}
    {%- do log('deftunes_transform_views: ' ~ schema ~ '.' ~ row[0] ~ ' -> ' ~ location) -%}
  {%- endfor -%}
  {%- for gone in existing if gone not in current -%}
    {%- do run_query('drop view ' ~ adapter.quote(schema) ~ '.' ~ adapter.quote(gone)) -%}
  {%- endfor -%}
  {#- run_query opened a transaction on this connection: commit it, or the models' connections would not see
      the new views. -#}
  {%- do adapter.commit() -%}
  {%- do log('deftunes_transform_views: ' ~ current | length ~ ' views in ' ~ schema ~ ' at the current '
             ~ 'snapshots of ' ~ catalog, info=true) -%}
  {{ return('') }}
{%- endmacro %}

{#- A SQL string literal. -#}
{% macro deftunes_sql_string(value) -%}
  '{{ value | replace("'", "''") }}'
{%- endmacro %}
