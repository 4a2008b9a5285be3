{#- One row per conversion, attribution model and touchpoint: the share of the conversion
    (credit) and of its revenue (revenue_credit) the touchpoint's channel and campaign earn.
    Each model's credits add up to 1 per conversion, and its revenue credits to the
    conversion's revenue:
    - first_touch, last_touch: all to the first or the last touchpoint;
    - linear: equal shares;
    - position_based: var tessera_attribution_position_weights to the first and the last (40/40
      by default), the rest split between those in between; with two touchpoints, half each;
    - time_decay: weights halving every var tessera_attribution_half_life_days before the
      conversion, normalised;
    - markov: the conversion split between the channels of its path in proportion to their
      removal effects (attribution_channel_effects), each channel's share split equally between
      its touchpoints; equal shares when no channel of the path has an effect.
    A conversion without touchpoints (no session in the look-back window, or no customer) gets
    one row per model crediting channel `direct` with everything, session_id null. -#}
{%- set position = var('tessera_attribution_position_weights') -%}
{%- set first_weight = position['first'] | float -%}
{%- set last_weight = position['last'] | float -%}
{%- set half_life_days = var('tessera_attribution_half_life_days') | float -%}
{%- set float_type = 'double precision' -%}
{%- set models = [
    'first_touch', 'last_touch', 'linear', 'position_based', 'time_decay', 'markov'
] -%}
{%- if first_weight < 0 or last_weight < 0 or first_weight + last_weight > 1 -%}
    {{ exceptions.raise_compiler_error(
        "var tessera_attribution_position_weights: first and last must be at least 0 and add "
        ~ "up to at most 1, got " ~ position
    ) }}
{%- endif -%}
{%- if half_life_days <= 0 -%}
    {{ exceptions.raise_compiler_error(
        "var tessera_attribution_half_life_days must be above 0, got " ~ half_life_days
    ) }}
{%- endif %}

with

attribution_conversions as (
    select * from {{ ref('attribution_conversions') }}
),

attribution_touchpoints as (
    select * from {{ ref('attribution_touchpoints') }}
),

attribution_channel_effects as (
    select * from {{ ref('attribution_channel_effects') }}
),

decays as (
    select
        conversion_id,
        session_id,
        power(cast(0.5 as {{ float_type }}), days_before_conversion / {{ half_life_days }})
            as decay
    from attribution_touchpoints
),

path_channels as (
    select
        attribution_touchpoints.conversion_id,
        attribution_touchpoints.channel,
        count(*) as channel_touches,
        max(coalesce(attribution_channel_effects.removal_effect, 0)) as removal_effect
    from attribution_touchpoints
    left join attribution_channel_effects
        on attribution_touchpoints.channel = attribution_channel_effects.channel
    group by attribution_touchpoints.conversion_id, attribution_touchpoints.channel
),

path_effects as (
    select
        conversion_id,
        channel,
        channel_touches,
        removal_effect,
        sum(removal_effect) over (partition by conversion_id) as path_effect
    from path_channels
),

weighted as (
    select
        attribution_touchpoints.*,
        decays.decay,
        path_effects.channel_touches,
        path_effects.removal_effect,
        path_effects.path_effect,
        sum(decays.decay) over (partition by attribution_touchpoints.conversion_id) as decay_total
    from attribution_touchpoints
    inner join decays
        on
            attribution_touchpoints.conversion_id = decays.conversion_id
            and attribution_touchpoints.session_id = decays.session_id
    inner join path_effects
        on
            attribution_touchpoints.conversion_id = path_effects.conversion_id
            and attribution_touchpoints.channel = path_effects.channel
),

attribution_models as (
    {%- for model in models %}
        select '{{ model }}' as model
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
),

credited as (
    select
        weighted.conversion_id,
        attribution_models.model,
        weighted.session_id,
        weighted.touch_number,
        weighted.channel,
        weighted.campaign,
        case attribution_models.model
            when 'first_touch' then case when weighted.touch_number = 1 then 1 else 0 end
            when 'last_touch'
                then case when weighted.touch_number = weighted.touch_count then 1 else 0 end
            when 'linear' then cast(1 as {{ float_type }}) / weighted.touch_count
            when 'position_based'
                then case
                    when weighted.touch_count = 1 then 1
                    when weighted.touch_count = 2 then 0.5
                    when weighted.touch_number = 1 then {{ first_weight }}
                    when weighted.touch_number = weighted.touch_count then {{ last_weight }}
                    else
                        cast({{ (1 - first_weight - last_weight) | round(12) }} as {{ float_type }})
                        / (weighted.touch_count - 2)
                end
            when 'time_decay' then weighted.decay / weighted.decay_total
            when 'markov'
                then case
                    when weighted.path_effect > 0
                        then
                            weighted.removal_effect / weighted.path_effect
                            / weighted.channel_touches
                    else cast(1 as {{ float_type }}) / weighted.touch_count
                end
        end as credit
    from weighted
    cross join attribution_models
),

untouched as (
    select
        attribution_conversions.conversion_id,
        attribution_models.model
    from attribution_conversions
    cross join attribution_models
    where
        not exists (
            select 1
            from attribution_touchpoints
            where attribution_touchpoints.conversion_id = attribution_conversions.conversion_id
        )
),

credits as (
    select
        conversion_id,
        model,
        session_id,
        touch_number,
        channel,
        campaign,
        cast(credit as {{ float_type }}) as credit
    from credited
    union all
    select
        conversion_id,
        model,
        cast(null as {{ dbt.type_string() }}) as session_id,
        cast(null as {{ dbt.type_int() }}) as touch_number,
        'direct' as channel,
        cast(null as {{ dbt.type_string() }}) as campaign,
        cast(1 as {{ float_type }}) as credit
    from untouched
)

select
    credits.conversion_id,
    attribution_conversions.conversion_type,
    attribution_conversions.conversion_name,
    attribution_conversions.customer_id,
    attribution_conversions.converted_at,
    credits.model,
    credits.session_id,
    credits.touch_number,
    credits.channel,
    credits.campaign,
    credits.credit,
    credits.credit * attribution_conversions.revenue as revenue_credit
from credits
inner join attribution_conversions
    on credits.conversion_id = attribution_conversions.conversion_id
