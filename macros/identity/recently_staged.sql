{#- The rows of an incrementally staged model (`relation`) staged since the identity model being
    built last ran: those whose `staged_at` column is later than its newest `loaded_at`. All of
    them when it stores nothing. Used on incremental runs only. -#}
{% macro recently_staged(relation, staged_at) -%}
    (
        select * from {{ relation }}
        where coalesce(
            {{ staged_at }} > (select max(stored.loaded_at) from {{ this }} as stored), true
        )
    ) as recently_staged
{%- endmacro %}
