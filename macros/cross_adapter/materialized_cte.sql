{#- After a CTE's `as`: on Postgres, ` materialized` when `materialize` is true and
    ` not materialized` when it is false; nothing elsewhere, or when it is none.

    Postgres inlines a CTE read once into the query around it, and materializes one read more
    than once, without statistics. Inlined, it may join before it filters: customer_events'
    incremental rerun at 200,000 customers joined all 4.3M staged page views and tracks to the
    identity map before keeping the few staged since (materialize them). Materialized, a
    join of it is estimated blind: identity_violations' four joins of identity_nodes were
    estimated at 3e13 rows and hashed in half a million batches, 160 s for 480 rows (inline
    them). -#}
{% macro materialized_cte(materialize=true) -%}
    {{ return(adapter.dispatch('materialized_cte', 'tessera')(materialize)) }}
{%- endmacro %}

{% macro default__materialized_cte(materialize) -%}
    {{ return('') }}
{%- endmacro %}

{% macro postgres__materialized_cte(materialize) -%}
    {%- if materialize is none -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(' materialized' if materialize else ' not materialized') }}
{%- endmacro %}
