{#- One row per customer with a value for `field`: the value that survives among the customer's
    candidate values, by the rule `config` names (var tessera_survivorship, one entry per field).
    `candidates` holds one row per value seen on one source row: customer_id, field_name,
    field_value, source_table, observed_at. Rules:
    - source_priority: the value from the first of config.sources that has one; several values
      from that source go to the most recently seen. Sources not listed are not candidates.
    - most_recent: the value seen last, on any source.
    - most_frequent: the value seen on the most source rows; a tie goes to the one seen last.
    config.sources may limit most_recent and most_frequent to some sources too. The last tie-break
    is the value itself in byte order, so every run and every adapter picks the same value.
    `<field>_source` is the source the surviving value came from: the first of config.sources that
    has it (source_priority), else the source that saw it last (ties: the first in byte order). -#}
{% macro survive_field(candidates, field, config) -%}
    {%- set orderings = {
        'source_priority': ['source_rank', 'last_observed_at desc', 'occurrence_count desc'],
        'most_recent': ['last_observed_at desc', 'occurrence_count desc'],
        'most_frequent': ['occurrence_count desc', 'last_observed_at desc'],
    } -%}
    {%- if config is not mapping or config.get('rule') not in orderings -%}
        {{ exceptions.raise_compiler_error(
            "tessera_survivorship." ~ field ~ " must be a mapping whose rule is one of "
            ~ (orderings.keys() | list | sort | join(', ')) ~ ", e.g. {rule: most_recent}; got "
            ~ config
        ) }}
    {%- endif -%}
    {%- set sources = config.get('sources') or [] -%}
    {%- set known_sources = tessera.identity_sources() | map(attribute='source_table') | list -%}
    {%- for source_table in sources if source_table not in known_sources -%}
        {{ exceptions.raise_compiler_error(
            "tessera_survivorship." ~ field ~ ": unknown source " ~ source_table ~ "; sources: "
            ~ known_sources | join(', ')
        ) }}
    {%- endfor -%}
    {%- if config['rule'] == 'source_priority' and not sources -%}
        {{ exceptions.raise_compiler_error(
            "tessera_survivorship." ~ field ~ ": rule source_priority needs a list of sources, "
            ~ "e.g. {rule: source_priority, sources: [crm_contacts, identifies]}"
        ) }}
    {%- endif -%}
    select
        customer_id,
        field_value as {{ field }},
        source_table as {{ field }}_source
    from (
        select
            customer_id,
            field_value,
            source_table,
            row_number() over (
                partition by customer_id
                order by
                    {{ orderings[config['rule']] | join(', ') }},
                    {{ tessera.bytewise('field_value') }},
                    own_source_rank,
                    source_observed_at desc,
                    {{ tessera.bytewise('source_table') }}
            ) as value_rank
        from (
            select
                customer_id,
                field_value,
                source_table,
                own_source_rank,
                source_observed_at,
                sum(source_count) over value_rows as occurrence_count,
                max(source_observed_at) over value_rows as last_observed_at,
                min(own_source_rank) over value_rows as source_rank
            from (
                select
                    customer_id,
                    field_value,
                    source_table,
                    count(*) as source_count,
                    max(observed_at) as source_observed_at,
                    {%- if sources %}
                    case source_table
                        {%- for source_table in sources %}
                        when '{{ source_table }}' then {{ loop.index }}
                        {%- endfor %}
                    end as own_source_rank
                    {%- else %}
                    0 as own_source_rank
                    {%- endif %}
                from {{ candidates }}
                where
                    field_name = '{{ field }}'
                    {%- if sources %}
                    and source_table in ('{{ sources | join("', '") }}')
                    {%- endif %}
                group by customer_id, field_value, source_table
            ) as source_stats
            window value_rows as (partition by customer_id, field_value)
        ) as value_stats
    ) as ranked_values
    where value_rank = 1
{%- endmacro %}
