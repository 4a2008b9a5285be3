{#- A 64-bit integer hash of a text expression, for order-independent fingerprints of a set of
    rows (the sum of their hashes): equal sets give equal sums, and a changed row changes the sum
    but for a chance of about one in 2^64. -#}
{% macro hash_bigint(expr) -%}
    {{ return(adapter.dispatch('hash_bigint', 'tessera')(expr)) }}
{%- endmacro %}

{% macro default__hash_bigint(expr) -%}
    hash({{ expr }})
{%- endmacro %}

{% macro postgres__hash_bigint(expr) -%}
    hashtextextended({{ expr }}, 0)
{%- endmacro %}

{% macro spark__hash_bigint(expr) -%}
    xxhash64({{ expr }})
{%- endmacro %}
