{#- One row per conversion and touchpoint: each session of the converting customer that started
    within var tessera_attribution_lookback_days before the conversion (and not after it),
    numbered from the first. A session can be a touchpoint of several conversions. -#}
{%- set lookback_days = var('tessera_attribution_lookback_days') | int %}

with

attribution_conversions as (
    select * from {{ ref('attribution_conversions') }}
),

sessions as (
    select * from {{ ref('sessions') }}
),

touches as (
    select
        attribution_conversions.conversion_id,
        attribution_conversions.customer_id,
        attribution_conversions.converted_at,
        sessions.session_id,
        sessions.channel,
        sessions.utm_campaign as campaign,
        sessions.started_at as touched_at,
        cast({{ dbt.datediff(
            'sessions.started_at', 'attribution_conversions.converted_at', 'second'
        ) }} as double precision) / 86400 as days_before_conversion
    from attribution_conversions
    inner join sessions
        on
            attribution_conversions.customer_id = sessions.customer_id
            and attribution_conversions.converted_at >= sessions.started_at
            and sessions.started_at >= {{ dbt.dateadd(
                'day', -lookback_days, 'attribution_conversions.converted_at'
            ) }}
)

select
    *,
    row_number() over (
        partition by conversion_id order by touched_at, session_id
    ) as touch_number,
    count(*) over (partition by conversion_id) as touch_count
from touches
