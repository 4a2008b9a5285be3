{#- National phone numbers need the calling code of var tessera_default_country; an unknown country
    would make every national number malformed, so the build stops here instead. -#}
with

known as (
    select count(*) as matching_rows
    from {{ ref('country_calling_codes') }}
    where country_code = '{{ var("tessera_default_country") }}'
)

select
    '{{ var("tessera_default_country") }}' as tessera_default_country,
    'not in seed country_calling_codes' as problem
from known
where matching_rows = 0
