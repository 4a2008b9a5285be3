{#- Schemas are named exactly as DESIGN.md says (staging, marts, ...) on every adapter, instead of
    dbt's default "<target schema>_<custom schema>", so BI tools and syncs find them by name.

    `tessera identity plan` sets var tessera_identity_plan_schema: the identity models then build
    into that scratch schema instead, but for those that depend on the sources alone
    (tessera.identity_live_models()), which are read where the live build put them. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set plan_schema = var('tessera_identity_plan_schema', none) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- elif plan_schema and custom_schema_name | trim == 'identity'
        and node.name not in tessera.identity_live_models() -%}
        {{ plan_schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}


{#- The identity models a plan reads from the live schema: they depend on the sources only, never
    on the vars, blocklist or overrides a plan changes (orchestration/identity/plan.py). -#}
{% macro identity_live_models() -%}
    {{ return(['identity_observations', 'identity_retracted_observations', 'identity_edges']) }}
{%- endmacro %}


{#- ref() of seed `name`, or, in a plan (var tessera_identity_plan_schema), the table of that name
    in the plan's schema when the plan loaded one from a file (`--blocklist`, `--overrides`). -#}
{% macro identity_seed(name) -%}
    {%- set seeded = ref(name) -%}
    {%- set plan_schema = var('tessera_identity_plan_schema', none) -%}
    {%- if execute and plan_schema -%}
        {%- set planned = adapter.get_relation(
            database=seeded.database, schema=plan_schema, identifier=name) -%}
        {%- if planned is not none -%}
            {{ return(planned) }}
        {%- endif -%}
    {%- endif -%}
    {{ return(seeded) }}
{%- endmacro %}
