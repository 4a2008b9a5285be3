{#- One row per stay of a customer in an audience: entered_at is the start of the run that first
    found the customer in the audience, exited_at the start of the run that no longer did (null
    while the customer is in it). Each run opens a row for every member without an open one
    (a customer who left and came back gets a new row) and closes every open row whose customer
    is no longer a member, also when the customer was merged away or erased. Kept through full
    refreshes: a rebuild would forget when people entered and left. The audiences are those of
    macro audience_models; `audience` is the model's name without the audience_ prefix. -#}
{{ config(
    materialized='incremental',
    full_refresh=false,
    incremental_strategy='delete+insert',
    unique_key=['audience', 'customer_id', 'entered_at'],
) }}
{%- set audience_models = tessera.audience_models() -%}

with

{% for audience_model in audience_models -%}
    {{ audience_model }} as (
        select * from {{ ref(audience_model) }}
    ),

{% endfor -%}

members as (
    {%- for audience_model in audience_models %}
        select
            cast('{{ audience_model[9:] }}' as {{ dbt.type_string() }}) as audience,
            customer_id
        from {{ audience_model }}
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
),

history as (
    {%- if is_incremental() %}
        select * from {{ this }}
    {%- else %}
        select
            cast(null as {{ dbt.type_string() }}) as audience,
            cast(null as {{ dbt.type_string() }}) as customer_id,
            cast(null as {{ dbt.type_timestamp() }}) as entered_at,
            cast(null as {{ dbt.type_timestamp() }}) as exited_at
        where 1 = 0
    {%- endif %}
),

open_stays as (
    select * from history
    where exited_at is null
),

entries as (
    select
        members.audience,
        members.customer_id,
        {{ tessera.run_timestamp() }} as entered_at,
        cast(null as {{ dbt.type_timestamp() }}) as exited_at
    from members
    left join open_stays
        on
            members.audience = open_stays.audience
            and members.customer_id = open_stays.customer_id
    where open_stays.customer_id is null
),

exits as (
    select
        open_stays.audience,
        open_stays.customer_id,
        open_stays.entered_at,
        {{ tessera.run_timestamp() }} as exited_at
    from open_stays
    left join members
        on
            open_stays.audience = members.audience
            and open_stays.customer_id = members.customer_id
    where members.customer_id is null
),

final as (
    select * from entries
    union all
    select * from exits
)

select * from final
