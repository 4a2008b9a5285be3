{#- One row per identifier whose evidence changed since identity_edges was last brought up to
    date: observed on a row loaded after that, or retracted after that. identity_edges deletes
    every pair touching one of them and re-derives those pairs from all rows holding them.

    The watermark is the newest updated_at in identity_edges, read through the catalog (ref()
    would make this model its own descendant's ancestor). A run that failed after loading
    observations leaves the watermark where it was, so the next run picks its rows up. -#}
{%- set edges_relation = none %}
{%- if execute and not flags.FULL_REFRESH %}
    {%- set edges_relation = adapter.get_relation(
        database=this.database, schema=this.schema, identifier='identity_edges'
    ) %}
{%- endif %}

with

observations as (
    select * from {{ ref('identity_observations') }}
),

retracted_observations as (
    select * from {{ ref('identity_retracted_observations') }}
),

changed as (
    {%- if edges_relation is not none %}
        select
            identifier_type,
            identifier_value
        from observations
        where
            loaded_at > (select max(updated_at) from {{ edges_relation }})
            or not exists (select 1 from {{ edges_relation }})
        union
        select
            identifier_type,
            identifier_value
        from retracted_observations
        where
            retracted_at > (select max(updated_at) from {{ edges_relation }})
            or not exists (select 1 from {{ edges_relation }})
    {%- else %}
        {#- No edges yet: identity_edges derives every pair and ignores this list. #}
        select
            identifier_type,
            identifier_value
        from observations
        where 1 = 0
        union
        select
            identifier_type,
            identifier_value
        from retracted_observations
        where 1 = 0
    {%- endif %}
)

select * from changed
