{#- The audience models audience_membership_history records: every model in models/audiences
    whose name starts with audience_. The list is written out because dbt learns a model's
    dependencies when it parses the SQL, before the graph exists; when the graph is there (at run
    time) it is checked against the models in models/audiences, so an audience added there and
    missing here fails the run instead of silently going unrecorded. -#}
{% macro audience_models() -%}
    {%- set names = [
        'audience_browse_abandoners',
        'audience_high_value_at_risk',
        'audience_likely_outdoor_buyers',
        'audience_repeat_buyers',
    ] -%}
    {%- if execute and graph.nodes -%}
        {%- set found = [] -%}
        {%- for node in graph.nodes.values() -%}
            {%- set path = node.original_file_path | replace('\\', '/') -%}
            {%- if node.resource_type == 'model' and node.package_name == project_name
                and path.startswith('models/audiences/') and node.name.startswith('audience_')
                and node.name != 'audience_membership_history' -%}
                {%- do found.append(node.name) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if found | sort != names | sort -%}
            {{ exceptions.raise_compiler_error(
                "macro audience_models lists " ~ names | sort | join(', ')
                ~ " but models/audiences holds " ~ found | sort | join(', ')
            ) }}
        {%- endif -%}
    {%- endif -%}
    {{ return(names) }}
{%- endmacro %}
