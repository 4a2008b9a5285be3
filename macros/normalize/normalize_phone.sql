{#- A phone number to E.164 (+ and up to 15 digits), or null where it cannot be one.
    `+`, or `00` before a non-zero digit, starts an international number (so a placeholder such as
    0000000000 stays a national number that the identity blocklist recognises); anything else is
    national to the default country,
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
        when {{ digits }} like '00%' and substr({{ digits }}, 3, 1) <> '0'
            then '+' || substr({{ digits }}, 3)
        else '+' || {{ country }}.calling_code || ({{ national }})
    end
{%- endmacro %}
