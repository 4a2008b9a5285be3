{#- CTE body: the identifiers identity_identifiers aggregates again (needs CTE last_built):
    those observed or withdrawn since it was last built, those blocked now but not as stored
    (or for another reason), and those stored as blocked that no longer are. -#}
{% macro identity_identifiers_to_rebuild() -%}
    {{ tessera.identifiers_stamped_since_built('identity_observations', 'loaded_at') }}
    union
    {{ tessera.identifiers_stamped_since_built('identity_retracted_observations', 'retracted_at') }}
    union
    select
        blocked.identifier_type,
        blocked.identifier_value
    from {{ ref('identity_blocked_identifiers') }} as blocked
    inner join {{ this }} as stored
        on
            blocked.identifier_type = stored.identifier_type
            and blocked.identifier_value = stored.identifier_value
    where
        not stored.is_blocked
        or stored.blocked_reason is distinct from blocked.blocked_reason
    union
    select
        stored.identifier_type,
        stored.identifier_value
    from {{ this }} as stored
    left join {{ ref('identity_blocked_identifiers') }} as blocked
        on
            stored.identifier_type = blocked.identifier_type
            and stored.identifier_value = blocked.identifier_value
    where stored.is_blocked and blocked.identifier_type is null
{%- endmacro %}


{#- identity_identifiers' pre-hook: write identity_identifiers_to_rebuild() to a table before
    the next pre-hook deletes the stored rows it compares with. -#}
{% macro stage_identifiers_to_rebuild() -%}
    {%- if execute and tessera.builds_incrementally() -%}
        {%- set staged = tessera.identifiers_to_rebuild_relation() -%}
        {% do adapter.drop_relation(staged) %}
        create table {{ staged }} as
        with

        last_built as (
            {{ tessera.last_built() }}
        ),

        changed_identifiers as (
            {{ tessera.identity_identifiers_to_rebuild() }}
        )

        select distinct
            identifier_type,
            identifier_value
        from changed_identifiers
    {%- endif -%}
{%- endmacro %}


{#- CTE body: the identifiers stage_identifiers_to_rebuild() wrote. -#}
{% macro staged_identifiers_to_rebuild() -%}
    select
        identifier_type,
        identifier_value
    from {{ tessera.identifiers_to_rebuild_relation() }}
{%- endmacro %}


{% macro drop_staged_identifiers_to_rebuild() -%}
    {%- if execute -%}
        {% do adapter.drop_relation(tessera.identifiers_to_rebuild_relation()) %}
    {%- endif -%}
{%- endmacro %}


{% macro identifiers_to_rebuild_relation() -%}
    {{ return(this.incorporate(path={'identifier': this.identifier ~ '__rebuild'}, type='table')) }}
{%- endmacro %}
