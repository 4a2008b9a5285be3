{#- One row per linkable identifier with the customer it belongs to. -#}
with

identity_map as (
    select * from {{ ref('identity_map') }}
),

representatives as (
    select
        cluster_id,
        min(identifier_type || ':' || identifier_value) as representative
    from identity_map
    group by cluster_id
),

final as (
    select
        identity_map.identifier_type,
        identity_map.identifier_value,
        'cus_' || substr(md5(representatives.representative), 1, 16) as customer_id
    from identity_map
    inner join representatives on identity_map.cluster_id = representatives.cluster_id
)

select * from final
