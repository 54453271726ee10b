{#- md5 surrogate key over one or more columns (our own: dbt_utils cannot be fetched offline).
    Nulls become '_null_', parts are joined by '-', so ('a', null) and ('a', '') differ. Same on DuckDB
    and Redshift: md5() of a varchar, hex. -#}
{% macro surrogate_key(columns) -%}
  {%- if columns is string -%}{%- set columns = [columns] -%}{%- endif -%}
  md5(
  {%- for col in columns %}
    coalesce(cast({{ col }} as {{ dbt.type_string() }}), '_null_'){% if not loop.last %} || '-' ||{% endif %}
  {%- endfor %}
  )
{%- endmacro %}

{#- Integer yyyymmdd key of a date or timestamp expression. -#}
{% macro date_key(expr) -%}
  (cast(extract(year from {{ expr }}) as integer) * 10000
   + cast(extract(month from {{ expr }}) as integer) * 100
   + cast(extract(day from {{ expr }}) as integer))
{%- endmacro %}
