{#- The data-driven (Markov) attribution model: one row per channel with its removal effect.

    Every journey is a path of channels from (start) to (conversion) or (null): the touchpoints
    of each conversion end in (conversion); a customer's sessions that are a touchpoint of no
    conversion make one path ending in (null). The paths give a first-order Markov chain (the
    share of the transitions out of each state going to each next state), and the probability
    of reaching (conversion) from (start) is read off the chain's transition matrix raised to
    the power 2^squarings (repeated squaring: 2^16 steps by default, where the chains of real
    journeys have long been absorbed). A channel's removal effect is the share of that
    probability lost when the channel is removed (its transitions lead to (null) instead);
    attribution_credits splits each conversion between the channels of its path in proportion
    to their removal effects. Pure SQL, the same on every warehouse. -#}
{%- set squarings = 16 %}

with

attribution_touchpoints as (
    select * from {{ ref('attribution_touchpoints') }}
),

sessions as (
    select * from {{ ref('sessions') }}
),

converting_steps as (
    select
        conversion_id as path_id,
        channel,
        '(conversion)' as outcome,
        touch_number as step,
        touch_count as steps
    from attribution_touchpoints
),

unconverted_sessions as (
    select
        sessions.customer_id,
        sessions.session_id,
        sessions.started_at,
        sessions.channel
    from sessions
    where not exists (
        select 1
        from attribution_touchpoints
        where attribution_touchpoints.session_id = sessions.session_id
    )
),

unconverted_steps as (
    select
        customer_id as path_id,
        channel,
        '(null)' as outcome,
        row_number() over (partition by customer_id order by started_at, session_id) as step,
        count(*) over (partition by customer_id) as steps
    from unconverted_sessions
),

steps as (
    select * from converting_steps
    union all
    select * from unconverted_steps
),

transitions as (
    select
        case when step = 1 then '(start)' else previous_channel end as from_state,
        channel as to_state
    from (
        select
            *,
            lag(channel) over (partition by outcome, path_id order by step) as previous_channel
        from steps
    ) as ordered_steps
    union all
    select
        channel as from_state,
        outcome as to_state
    from steps
    where step = steps
),

transition_counts as (
    select
        from_state,
        to_state,
        count(*) as transitions
    from transitions
    group by from_state, to_state
),

probabilities as (
    select
        from_state,
        to_state,
        cast(transitions as double precision)
        / sum(transitions) over (partition by from_state) as probability
    from transition_counts
),

channels as (
    select distinct to_state as channel
    from transition_counts
    where to_state not in ('(conversion)', '(null)')
),

{# One chain per removed channel, and the whole chain under removed = '(none)'. #}
absorbing_states as (
    select '(conversion)' as state
    union all
    select '(null)' as state
),

removals as (
    select channel as removed from channels
    union all
    select '(none)' as removed
),

step_0 as (
    select
        removals.removed,
        probabilities.from_state,
        case
            when probabilities.to_state = removals.removed then '(null)'
            else probabilities.to_state
        end as to_state,
        sum(probabilities.probability) as probability
    from removals
    cross join probabilities
    where probabilities.from_state <> removals.removed
    group by
        removals.removed,
        probabilities.from_state,
        case
            when probabilities.to_state = removals.removed then '(null)'
            else probabilities.to_state
        end
    union all
    select
        removals.removed,
        absorbing.state as from_state,
        absorbing.state as to_state,
        cast(1 as double precision) as probability
    from removals
    cross join absorbing_states as absorbing
),
{%- for i in range(1, squarings + 1) %}

    step_{{ i }} as (
        select
            left_step.removed,
            left_step.from_state,
            right_step.to_state,
            sum(left_step.probability * right_step.probability) as probability
        from step_{{ i - 1 }} as left_step
        inner join step_{{ i - 1 }} as right_step
            on
                left_step.removed = right_step.removed
                and left_step.to_state = right_step.from_state
        group by left_step.removed, left_step.from_state, right_step.to_state
        {#- Vanishing entries are dropped: their products would underflow (an error on Postgres). #}
        having sum(left_step.probability * right_step.probability) >= 1e-150
    ),
{%- endfor %}

conversion_probabilities as (
    select
        removals.removed,
        coalesce(absorbed.probability, 0) as probability
    from removals
    left join step_{{ squarings }} as absorbed
        on
            removals.removed = absorbed.removed
            and absorbed.from_state = '(start)'
            and absorbed.to_state = '(conversion)'
),

effects as (
    select
        channels.channel,
        whole_chain.probability as conversion_probability,
        without_channel.probability as conversion_probability_without,
        case
            when whole_chain.probability > 0
                then greatest(
                    0, least(1, 1 - without_channel.probability / whole_chain.probability)
                )
            else 0
        end as removal_effect
    from channels
    inner join conversion_probabilities as without_channel
        on channels.channel = without_channel.removed
    cross join conversion_probabilities as whole_chain
    where whole_chain.removed = '(none)'
)

select
    channel,
    conversion_probability,
    conversion_probability_without,
    removal_effect,
    case
        when sum(removal_effect) over () > 0
            then removal_effect / sum(removal_effect) over ()
        else 0
    end as removal_effect_share
from effects
