{#- A phone number to E.164 (+ and up to 15 digits), or null where it cannot be one.
    `+` or `00` starts an international number; anything else is national to the default country,
    whose row of seed country_calling_codes the model joins as `country`: its trunk prefix is
    dropped and its calling code prepended. -#}
{% macro normalize_phone(expr, country='default_country') -%}
    {%- set digits = tessera.regex_replace_all(expr, '[^0-9]', '') -%}
    {%- set trunk = "coalesce(" ~ country ~ ".trunk_prefix, '')" -%}
    {%- set national = "case when " ~ trunk ~ " <> '' and " ~ digits ~ " like " ~ trunk ~ " || '%'"
        ~ " and length(" ~ digits ~ ") - length(" ~ trunk ~ ") between "
        ~ country ~ ".nsn_min_length and " ~ country ~ ".nsn_max_length"
        ~ " then substr(" ~ digits ~ ", length(" ~ trunk ~ ") + 1)"
        ~ " when length(" ~ digits ~ ") between "
        ~ country ~ ".nsn_min_length and " ~ country ~ ".nsn_max_length"
        ~ " then " ~ digits ~ " end" -%}
    case
        when trim({{ expr }}) like '+%' then '+' || {{ digits }}
        when {{ digits }} like '00%' then '+' || substr({{ digits }}, 3)
        else '+' || {{ country }}.calling_code || ({{ national }})
    end
{%- endmacro %}
