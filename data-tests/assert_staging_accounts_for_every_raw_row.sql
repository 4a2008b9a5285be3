{#- staged + rejected = raw for every source: no row is lost or doubled by staging. Returns one
    row per source where the counts disagree. -#}
{%- set sources = [
    ('segment', 'identifies', 'stg_segment__identifies'),
    ('segment', 'tracks', 'stg_segment__tracks'),
    ('segment', 'pages', 'stg_segment__pages'),
    ('shop', 'orders', 'stg_shop__orders'),
    ('crm', 'crm_contacts', 'stg_crm__contacts'),
    ('support', 'support_tickets', 'stg_support__tickets'),
    ('privacy', 'consents', 'stg_privacy__consents'),
    ('privacy', 'deletion_requests', 'stg_privacy__deletion_requests'),
    ('shop', 'order_items', 'stg_shop__order_items'),
] -%}

with

counts as (
    {% for source_name, table_name, staged in sources %}
        select
            '{{ table_name }}' as source_table,
            (
                select count(*)
                from {{ tessera.source_or_empty(source_name, table_name) }} as raw_rows
            ) as raw_rows,
            (select count(*) from {{ ref(staged) }}) as staged_rows,
            (select count(*) from {{ ref(staged ~ '_rejected') }}) as rejected_rows
        {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

mismatches as (
    select *
    from counts
    where raw_rows <> staged_rows + rejected_rows
)

select * from mismatches
