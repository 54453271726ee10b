{#- Schemas are named exactly as configured, not prefixed with the target schema: the Redshift setup Lambda
    creates `deftunes_serving` and `deftunes_bi` (SERVING_SCHEMA, BI_SCHEMA) and grants on those names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
  {%- if custom_schema_name is none -%}
    {{ target.schema }}
  {%- else -%}
    {{ custom_schema_name | trim }}
  {%- endif -%}
{%- endmacro %}
