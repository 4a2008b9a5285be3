{#- The funnels var tessera_funnels declares, checked: a list of {name, description, window_hours,
    steps: [{name, event, properties}]}. An error names the funnel and the field. -#}
{% macro funnel_settings() -%}
    {%- set declared = var('tessera_funnels') or [] -%}
    {%- if declared is mapping or declared is string -%}
        {{ exceptions.raise_compiler_error("var tessera_funnels must be a list of funnels") }}
    {%- endif -%}
    {%- set funnels = [] -%}
    {%- set names = [] -%}
    {%- for funnel in declared -%}
        {%- set where = "var tessera_funnels, funnel " ~ loop.index -%}
        {%- if funnel is not mapping or not funnel.get('name') -%}
            {{ exceptions.raise_compiler_error(where ~ ": needs a name") }}
        {%- endif -%}
        {%- set where = "var tessera_funnels, funnel " ~ funnel['name'] -%}
        {%- if not modules.re.match('^[a-z][a-z0-9_]*$', funnel['name'] | string) -%}
            {{ exceptions.raise_compiler_error(where ~ ": name must be snake_case (a-z, 0-9, _)") }}
        {%- endif -%}
        {%- if funnel['name'] in names -%}
            {{ exceptions.raise_compiler_error(where ~ ": declared twice") }}
        {%- endif -%}
        {%- do names.append(funnel['name']) -%}
        {%- set window_hours = funnel.get('window_hours') -%}
        {%- if window_hours is none or window_hours is string or window_hours | float <= 0 -%}
            {{ exceptions.raise_compiler_error(
                where ~ ": window_hours must be a number of hours above 0, got " ~ window_hours
            ) }}
        {%- endif -%}
        {%- set steps = funnel.get('steps') -%}
        {%- if steps is none or steps is mapping or steps is string or steps | length < 2 -%}
            {{ exceptions.raise_compiler_error(where ~ ": steps must list at least two steps") }}
        {%- endif -%}
        {%- set checked_steps = [] -%}
        {%- for step in steps -%}
            {%- if step is not mapping or not step.get('event') -%}
                {{ exceptions.raise_compiler_error(
                    where ~ ", step " ~ loop.index ~ ": needs an event (an event_name of customer_events)"
                ) }}
            {%- endif -%}
            {%- set properties = step.get('properties') or {} -%}
            {%- if properties is not mapping -%}
                {{ exceptions.raise_compiler_error(
                    where ~ ", step " ~ loop.index ~ ": properties must map property names to values"
                ) }}
            {%- endif -%}
            {%- for key in properties -%}
                {%- if not modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', key | string) -%}
                    {{ exceptions.raise_compiler_error(
                        where ~ ", step " ~ loop.index ~ ": property name " ~ key ~ " must be letters, digits and _"
                    ) }}
                {%- endif -%}
            {%- endfor -%}
            {%- do checked_steps.append({
                'number': loop.index,
                'name': step.get('name') or step['event'],
                'event': step['event'],
                'properties': properties,
            }) -%}
        {%- endfor -%}
        {%- do funnels.append({
            'name': funnel['name'],
            'window_hours': window_hours | float,
            'steps': checked_steps,
        }) -%}
    {%- endfor -%}
    {{ return(funnels) }}
{%- endmacro %}
