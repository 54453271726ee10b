{#- is_incremental() that needs no connection when compiling with --no-populate-cache (the Redshift target is
    compiled offline): there it renders the full-build SQL instead of asking the warehouse whether the
    relation exists. In every other command it is dbt's is_incremental(). -#}
{% macro deftunes_is_incremental() -%}
  {%- if flags.WHICH == 'compile' and not flags.POPULATE_CACHE -%}
    {{ return(false) }}
  {%- endif -%}
  {{ return(is_incremental()) }}
{%- endmacro %}
