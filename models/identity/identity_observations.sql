{#- Every identifier seen on every valid source row: what the graph is built from, and what
    `tessera explain` shows as evidence. -#}
with

observations as (
    {%- for source in tessera.identity_sources() %}
    {{ tessera.identifier_observations(
        ref(source.model), source.source_table, source.row_id, source.observed_at,
        source.identifiers
    ) }}
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
)

select * from observations
