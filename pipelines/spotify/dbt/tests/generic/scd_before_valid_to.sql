{#- Type-2 dimension: the tested column (valid_from) is strictly before valid_to_column wherever that is not null
    (an open, current row has a null valid_to). Returns the rows that break it. -#}
{% test scd_before_valid_to(model, column_name, valid_to_column='valid_to') %}
select {{ column_name }} as valid_from, {{ valid_to_column }} as valid_to
from {{ model }}
where {{ valid_to_column }} is not null
  and not ({{ column_name }} < {{ valid_to_column }})
{% endtest %}
