{#- One row per funnel, step, week and channel: how many attempts reached the step before
    (entrants) and how many reached it (conversions). Funnels are declared in var
    tessera_funnels. An attempt is a customer's first event of the funnel's first step in a
    week (weeks start on Monday, UTC); it reaches step k with the first step-k event at or after
    the time it reached step k - 1 and within window_hours of the first step. Its channel is the
    channel of the session the first step happened in (unassigned when that event belongs to no
    session, e.g. an order). For step 1, entrants equal conversions; conversion_rate is
    conversions / entrants, overall_conversion_rate conversions / the attempts that started.
    Counts add up over weeks and channels; rates do not. -#}
{%- set funnels = tessera.funnel_settings() -%}
{%- set text = dbt.type_string() -%}
{%- set max_steps = funnels | map(attribute='steps') | map('length') | max if funnels else 1 -%}
{#- A step's property filters, as a condition excluding its events that do not match them. -#}
{%- set unmatched = [] -%}
{%- for funnel in funnels -%}
    {%- for step in funnel.steps if step.properties -%}
        {%- set conditions = [] -%}
        {%- for key, value in step.properties.items() -%}
            {%- do conditions.append(
                tessera.json_field_text(tessera.try_parse_json('customer_events.properties'), key)
                ~ " = '" ~ (value | string | replace("'", "''")) ~ "'"
            ) -%}
        {%- endfor -%}
        {%- do unmatched.append(
            "step_definitions.funnel = '" ~ funnel.name ~ "' and step_definitions.step_number = "
            ~ step.number ~ " and not (" ~ conditions | join(' and ') ~ ")"
        ) -%}
    {%- endfor -%}
{%- endfor -%}
{%- set negated = [] -%}
{%- for condition in unmatched -%}
    {%- do negated.append('not (' ~ condition ~ ')') -%}
{%- endfor -%}
{%- set property_filter = negated | join(' and ') if negated else 'true' %}

with

customer_events as (
    select * from {{ ref('customer_events') }}
),

sessions as (
    select * from {{ ref('sessions') }}
),

step_definitions as (
    {%- for funnel in funnels %}
        {%- for step in funnel.steps %}
            select
                '{{ funnel.name }}' as funnel,
                {{ step.number }} as step_number,
                '{{ step.name | replace("'", "''") }}' as step_name,
                '{{ step.event | replace("'", "''") }}' as event_name,
                {{ (funnel.window_hours * 60) | int }} as window_minutes
            {%- if not loop.last %}
                union all
            {%- endif %}
        {%- endfor %}
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- else %}
        select
            cast(null as {{ text }}) as funnel,
            cast(null as integer) as step_number,
            cast(null as {{ text }}) as step_name,
            cast(null as {{ text }}) as event_name,
            cast(null as integer) as window_minutes
        where 1 = 0
    {%- endfor %}
),

step_events as (
    select
        step_definitions.funnel,
        step_definitions.step_number,
        step_definitions.window_minutes,
        customer_events.customer_id,
        customer_events.occurred_at
    from customer_events
    inner join step_definitions
        on customer_events.event_name = step_definitions.event_name
    where
        customer_events.customer_id is not null
        and {{ property_filter }}
),

first_steps as (
    select
        funnel,
        customer_id,
        occurred_at as entered_at,
        window_minutes,
        cast({{ dbt.date_trunc('week', 'occurred_at') }} as date) as week_start
    from step_events
    where step_number = 1
),

ranked_first_steps as (
    select
        *,
        row_number() over (
            partition by funnel, customer_id, week_start order by entered_at
        ) as attempt_rank
    from first_steps
),

attempts as (
    select
        ranked_first_steps.funnel,
        ranked_first_steps.customer_id,
        ranked_first_steps.week_start,
        ranked_first_steps.entered_at,
        ranked_first_steps.window_minutes,
        coalesce(sessions.channel, 'unassigned') as channel
    from ranked_first_steps
    left join sessions
        on
            ranked_first_steps.customer_id = sessions.customer_id
            and ranked_first_steps.entered_at >= sessions.started_at
            and ranked_first_steps.entered_at <= sessions.ended_at
    where ranked_first_steps.attempt_rank = 1
),

reached_1 as (
    select
        funnel,
        customer_id,
        entered_at,
        window_minutes,
        entered_at as reached_at
    from attempts
),
{%- for number in range(2, max_steps + 1) %}

    reached_{{ number }} as (
        select
            reached.funnel,
            reached.customer_id,
            reached.entered_at,
            reached.window_minutes,
            min(step_events.occurred_at) as reached_at
        from reached_{{ number - 1 }} as reached
        inner join step_events
            on
                reached.funnel = step_events.funnel
                and reached.customer_id = step_events.customer_id
                and step_events.step_number = {{ number }}
                and reached.reached_at <= step_events.occurred_at
                and {{ dbt.dateadd('minute', 'reached.window_minutes', 'reached.entered_at') }}
                >= step_events.occurred_at
        group by reached.funnel, reached.customer_id, reached.entered_at, reached.window_minutes
    ),
{%- endfor %}

reached as (
    {%- for number in range(1, max_steps + 1) %}
        select
            {{ number }} as step_number,
            funnel,
            customer_id,
            entered_at
        from reached_{{ number }}
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
),

reached_counts as (
    select
        reached.funnel,
        reached.step_number,
        attempts.week_start,
        attempts.channel,
        count(*) as conversions
    from reached
    inner join attempts
        on
            reached.funnel = attempts.funnel
            and reached.customer_id = attempts.customer_id
            and reached.entered_at = attempts.entered_at
    group by reached.funnel, reached.step_number, attempts.week_start, attempts.channel
),

cells as (
    select distinct
        funnel,
        week_start,
        channel
    from attempts
),

counts as (
    select
        step_definitions.funnel,
        step_definitions.step_number,
        step_definitions.step_name,
        step_definitions.event_name,
        cells.week_start,
        cells.channel,
        coalesce(reached_counts.conversions, 0) as conversions
    from step_definitions
    inner join cells
        on step_definitions.funnel = cells.funnel
    left join reached_counts
        on
            step_definitions.funnel = reached_counts.funnel
            and step_definitions.step_number = reached_counts.step_number
            and cells.week_start = reached_counts.week_start
            and cells.channel = reached_counts.channel
),

flows as (
    select
        *,
        coalesce(
            lag(conversions) over (
                partition by funnel, week_start, channel order by step_number
            ),
            conversions
        ) as entrants,
        first_value(conversions) over (
            partition by funnel, week_start, channel order by step_number
        ) as attempts
    from counts
)

select
    funnel,
    step_number,
    step_name,
    event_name,
    week_start,
    channel,
    entrants,
    conversions,
    case
        when entrants > 0 then cast(conversions as double precision) / entrants
    end as conversion_rate,
    case
        when attempts > 0 then cast(conversions as double precision) / attempts
    end as overall_conversion_rate
from flows
