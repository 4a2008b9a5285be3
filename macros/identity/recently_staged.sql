{#- The rows of an incrementally staged model (`relation`) that the identity model being built has
    to read again: those staged since it last ran (their `staged_at` later than its newest
    `loaded_at`; all of them when it stores nothing), and those whose observations this run
    retracted (identity_retracted_observations). Used on incremental runs only. -#}
{% macro recently_staged(relation, staged_at, source_table, row_id) -%}
    (
        select * from {{ relation }} as staged
        where
            coalesce(
                staged.{{ staged_at }} > (select max(stored.loaded_at) from {{ this }} as stored),
                true
            )
            or exists (
                select 1 from {{ ref('identity_retracted_observations') }} as retracted
                where
                    retracted.retracted_at = {{ tessera.run_timestamp() }}
                    and retracted.source_table = '{{ source_table }}'
                    and retracted.source_row_id = staged.{{ row_id }}
            )
    ) as recently_staged
{%- endmacro %}
