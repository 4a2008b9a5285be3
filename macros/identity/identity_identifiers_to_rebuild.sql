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
