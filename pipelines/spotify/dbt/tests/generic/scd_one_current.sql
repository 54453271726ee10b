{#- Type-2 dimension: exactly one current row (current_column true) per value of the tested key column.
    Returns the keys with none or several. -#}
{% test scd_one_current(model, column_name, current_column='is_current') %}
select
    {{ column_name }} as natural_key,
    sum(case when {{ current_column }} = true then 1 else 0 end) as current_rows
from {{ model }}
group by {{ column_name }}
having sum(case when {{ current_column }} = true then 1 else 0 end) <> 1
{% endtest %}
