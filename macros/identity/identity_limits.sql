{#- Materialization: which edges of the identity graph to drop so that no customer breaks a limit
    or holds two identifiers a never_link override keeps apart.

    The model's SQL returns every graph edge (edge_kind 'link') with its unconstrained component
    and both nodes' type, type_priority, seed_rank and limit_key, and every never_link override
    between two nodes (edge_kind 'never_link', not an edge of the graph). Columns: node_a,
    node_b, edge_kind, component_id, type_a, type_b, type_priority_a, type_priority_b,
    seed_rank_a, seed_rank_b, limit_key_a, limit_key_b. The table built holds one row per
    dropped edge: node_a, node_b, component_id (before the split), rule, limited_type,
    found_count, limit_value, kept_node, excess_node, resolution_round.

    Only components that break a rule are worked on, round by round until none does:
    - never link (overrides): in a component holding both identifiers of a never_link pair, the
      two are seeds, the stronger one (type priority, then seed rank) kept; split as below.
    - type limit (var tessera_identity_limits): in a component holding n > limit identifiers of
      one type (the highest-priority such type first), those identifiers are seeds; identifiers
      with one limit_key (always-linked to each other by overrides) are one seed and count once.
      The `limit` best-ranked seeds are kept, the others are excess. Every identifier joins its
      nearest seed (breadth-first, ties to a kept seed, then to the better rank), and every edge
      between the cells of two different seeds one of which is excess is dropped. The kept seeds
      stay together; each excess seed leaves with the identifiers nearest to it.
    - cap (var tessera_max_identifiers_per_customer): in a component over the cap with no other
      rule broken, identifiers are ordered by type priority (then type name, for types sharing
      one), then seed rank, and every edge of an identifier beyond the cap is dropped.
    Each round can only split components, so the loop ends; max_rounds (config, default 50)
    turns a bug into an error instead of a hang.

    Every row is stamped with the run (_built_at) and the limit settings it applied
    (limits_settings). With config solve_incrementally: true, a run is partial when
    tessera.limits_solve_incrementally() says so: the model's SQL returns the edges of the
    components to work on only, and the drops found are added to the stored ones; the model
    deletes the stored drops those replace (a post-hook). -#}
{% materialization identity_limits, default -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set limits = var('tessera_identity_limits') -%}
    {%- set cap = var('tessera_max_identifiers_per_customer') -%}
    {%- set max_rounds = config.get('max_rounds', 50) -%}
    {%- set incremental = tessera.limits_solve_incrementally() -%}
    {%- set settings = tessera.identity_limits_settings() -%}
    {%- set names = ['edges', 'links', 'never', 'nodes', 'scope', 'scope_edges', 'components',
                     'violated', 'seeds',
                     'labels', 'next_labels', 'capped', 'dropped', 'built', 'stamped'] -%}
    {%- set rel = {} -%}
    {%- for name in names -%}
        {%- do rel.update({name: this.incorporate(
            path={'identifier': this.identifier ~ '__' ~ name}, type='table')}) -%}
    {%- endfor -%}

    {{ run_hooks(pre_hooks) }}
    {%- for name in names %}{% do adapter.drop_relation(rel[name]) %}{% endfor -%}

    {% call statement('limits_input') -%}
        create table {{ rel.edges }} as {{ sql }}
    {%- endcall %}
    {% do tessera.analyze_table(rel.edges) %}
    {% call statement('limits_links') -%}
        create table {{ rel.links }} as
        select * from {{ rel.edges }} where edge_kind = 'link'
    {%- endcall %}
    {% do tessera.analyze_table(rel.links) %}
    {% call statement('limits_never') -%}
        create table {{ rel.never }} as
        select distinct node_a, node_b from {{ rel.edges }} where edge_kind = 'never_link'
    {%- endcall %}
    {% call statement('limits_nodes') -%}
        create table {{ rel.nodes }} as
        select distinct node_id, component_id, identifier_type, type_priority, seed_rank,
            limit_key
        from (
            select node_a as node_id, component_id, type_a as identifier_type,
                type_priority_a as type_priority, seed_rank_a as seed_rank,
                limit_key_a as limit_key
            from {{ rel.links }}
            union all
            select node_b as node_id, component_id, type_b as identifier_type,
                type_priority_b as type_priority, seed_rank_b as seed_rank,
                limit_key_b as limit_key
            from {{ rel.links }}
        ) as endpoints
    {%- endcall %}
    {% do tessera.analyze_table(rel.nodes) %}
    {% call statement('limits_dropped') -%}
        create table {{ rel.dropped }} (
            node_a bigint,
            node_b bigint,
            component_id bigint,
            rule varchar(32),
            limited_type varchar(32),
            found_count bigint,
            limit_value bigint,
            kept_node bigint,
            excess_node bigint,
            resolution_round integer
        )
    {%- endcall %}
    {#- The scope: nodes of the components still to check, with their current component. -#}
    {% call statement('limits_scope') -%}
        create table {{ rel.scope }} as
        select node_id, component_id as original_component_id, component_id,
            identifier_type, type_priority, seed_rank, limit_key
        from {{ rel.nodes }}
    {%- endcall %}
    {% do tessera.analyze_table(rel.scope) %}

    {%- set state = namespace(done=false, rounds=0) -%}
    {%- for round in range(1, max_rounds + 1) if not state.done %}
        {%- set state.rounds = round -%}
        {% do adapter.drop_relation(rel.violated) %}
        {% call statement('limits_violated') -%}
            create table {{ rel.violated }} as
            with never_broken as (
                select scope_a.component_id, never.node_a, never.node_b,
                    row_number() over (
                        partition by scope_a.component_id order by never.node_a, never.node_b
                    ) as break_rank
                from {{ rel.never }} as never
                inner join {{ rel.scope }} as scope_a on never.node_a = scope_a.node_id
                inner join {{ rel.scope }} as scope_b on never.node_b = scope_b.node_id
                where scope_a.component_id = scope_b.component_id
            ),
            counted as (
                select component_id, identifier_type, min(type_priority) as type_priority,
                    count(distinct limit_key) as found_count
                from {{ rel.scope }}
                group by component_id, identifier_type
            ),
            limits as (
                {%- for identifier_type, limit in limits.items() %}
                select '{{ identifier_type }}' as identifier_type, {{ limit }} as limit_value
                {% if not loop.last %}union all{% endif %}
                {%- else %}
                {#- No per-type limits configured: only the cap applies. #}
                select cast(null as varchar(32)) as identifier_type, 0 as limit_value where 1 = 0
                {%- endfor %}
            ),
            broken as (
                select counted.*, limits.limit_value,
                    row_number() over (
                        partition by counted.component_id
                        order by counted.type_priority, counted.identifier_type
                    ) as break_rank
                from counted
                inner join limits on counted.identifier_type = limits.identifier_type
                left join never_broken
                    on counted.component_id = never_broken.component_id
                where counted.found_count > limits.limit_value
                    and never_broken.component_id is null
            )
            {#- A never_link override first: it is a person's decision, a limit a default. #}
            select component_id, 'type_limit' as rule, identifier_type, found_count,
                cast(limit_value as bigint) as limit_value,
                cast(null as bigint) as never_a, cast(null as bigint) as never_b
            from broken
            where break_rank = 1
            union all
            select component_id, 'never_link' as rule, cast(null as varchar(32)),
                cast(null as bigint), cast(null as bigint), node_a, node_b
            from never_broken
            where break_rank = 1
        {%- endcall %}
        {% do tessera.analyze_table(rel.violated) %}
        {% do adapter.drop_relation(rel.capped) %}
        {% call statement('limits_capped') -%}
            create table {{ rel.capped }} as
            with sized as (
                select component_id, count(*) as found_count
                from {{ rel.scope }}
                group by component_id
            )
            select sized.component_id, sized.found_count
            from sized
            left join {{ rel.violated }} as violated
                on sized.component_id = violated.component_id
            where sized.found_count > {{ cap }} and violated.component_id is null
        {%- endcall %}
        {% do tessera.analyze_table(rel.capped) %}
        {%- set pending = run_query(
            "select (select count(*) from " ~ rel.violated ~ ") + (select count(*) from "
            ~ rel.capped ~ ")") -%}
        {%- if pending.columns[0].values()[0] == 0 -%}
            {%- set state.done = true -%}
        {%- else -%}
            {% do adapter.drop_relation(rel.scope_edges) %}
            {% call statement('limits_scope_edges') -%}
                create table {{ rel.scope_edges }} as
                select edges.node_a, edges.node_b, scope.component_id
                from {{ rel.links }} as edges
                inner join {{ rel.scope }} as scope on edges.node_a = scope.node_id
                left join {{ rel.dropped }} as dropped
                    on edges.node_a = dropped.node_a and edges.node_b = dropped.node_b
                where dropped.node_a is null
                    and scope.component_id in (
                        select component_id from {{ rel.violated }}
                        union all
                        select component_id from {{ rel.capped }}
                    )
            {%- endcall %}
            {% do tessera.analyze_table(rel.scope_edges) %}
            {#- Type limits: seeds, then a breadth-first wave from all seeds at once. -#}
            {% do adapter.drop_relation(rel.seeds) %}
            {% call statement('limits_seeds') -%}
                create table {{ rel.seeds }} as
                {#- Type limit: the identifiers of the type, by class (always-linked ones are
                    one seed), best-evidenced first. Never link: its two identifiers, the
                    stronger (type, then evidence) first. #}
                with classes as (
                    select component_id, limit_key, min(seed_rank) as class_rank
                    from {{ rel.scope }}
                    group by component_id, limit_key
                ),
                ranked as (
                    select scope.node_id, scope.component_id, scope.limit_key as seed_id,
                        dense_rank() over (
                            partition by scope.component_id
                            order by classes.class_rank, scope.limit_key
                        ) as seed_position,
                        violated.limit_value
                    from {{ rel.scope }} as scope
                    inner join {{ rel.violated }} as violated
                        on scope.component_id = violated.component_id
                        and scope.identifier_type = violated.identifier_type
                        and violated.rule = 'type_limit'
                    inner join classes
                        on scope.component_id = classes.component_id
                        and scope.limit_key = classes.limit_key
                ),
                never_ends as (
                    select scope.node_id, scope.component_id, scope.node_id as seed_id,
                        row_number() over (
                            partition by scope.component_id
                            order by scope.type_priority, scope.seed_rank, scope.node_id
                        ) as seed_position,
                        1 as limit_value
                    from {{ rel.scope }} as scope
                    inner join {{ rel.violated }} as violated
                        on scope.component_id = violated.component_id
                        and violated.rule = 'never_link'
                        and (scope.node_id = violated.never_a or scope.node_id = violated.never_b)
                )
                select node_id, component_id, seed_id, seed_position,
                    case when seed_position > limit_value then 1 else 0 end as is_excess
                from ranked
                union all
                select node_id, component_id, seed_id, seed_position,
                    case when seed_position > limit_value then 1 else 0 end as is_excess
                from never_ends
            {%- endcall %}
            {% do tessera.analyze_table(rel.seeds) %}
            {% do adapter.drop_relation(rel.labels) %}
            {% call statement('limits_labels') -%}
                create table {{ rel.labels }} as
                select node_id, component_id, seed_id, is_excess, seed_position,
                    0 as distance
                from {{ rel.seeds }}
            {%- endcall %}
            {% do tessera.analyze_table(rel.labels) %}
            {%- set wave = namespace(growing=true, distance=0) -%}
            {%- for step in range(100000) if wave.growing %}
                {%- set wave.distance = wave.distance + 1 -%}
                {% do adapter.drop_relation(rel.next_labels) %}
                {% call statement('limits_wave') -%}
                    create table {{ rel.next_labels }} as
                    with kept_edges as (
                        select node_a, node_b from {{ rel.scope_edges }}
                    ),
                    frontier as (
                        select node_id, component_id, seed_id, is_excess, seed_position
                        from {{ rel.labels }}
                        where distance = {{ wave.distance - 1 }}
                    ),
                    reached as (
                        select kept_edges.node_b as node_id, frontier.component_id,
                            frontier.seed_id, frontier.is_excess, frontier.seed_position
                        from frontier
                        inner join kept_edges on frontier.node_id = kept_edges.node_a
                        union all
                        select kept_edges.node_a as node_id, frontier.component_id,
                            frontier.seed_id, frontier.is_excess, frontier.seed_position
                        from frontier
                        inner join kept_edges on frontier.node_id = kept_edges.node_b
                    ),
                    fresh as (
                        select reached.*,
                            row_number() over (
                                partition by reached.node_id
                                order by reached.is_excess, reached.seed_position
                            ) as choice
                        from reached
                        left join {{ rel.labels }} as labels
                            on reached.node_id = labels.node_id
                        where labels.node_id is null
                    )
                    select node_id, component_id, seed_id, is_excess, seed_position,
                        distance
                    from {{ rel.labels }}
                    union all
                    select node_id, component_id, seed_id, is_excess, seed_position,
                        {{ wave.distance }} as distance
                    from fresh
                    where choice = 1
                {%- endcall %}
                {% do tessera.analyze_table(rel.next_labels) %}
                {%- set grown = run_query(
                    "select count(*) from " ~ rel.next_labels ~ " where distance = "
                    ~ wave.distance) -%}
                {%- set wave.growing = grown.columns[0].values()[0] > 0 -%}
                {% do adapter.drop_relation(rel.labels) %}
                {% do adapter.rename_relation(rel.next_labels, rel.labels) %}
            {%- endfor %}
            {% call statement('limits_drop_between_cells') -%}
                insert into {{ rel.dropped }}
                select edges.node_a, edges.node_b, scope.original_component_id,
                    violated.rule, violated.identifier_type, violated.found_count,
                    violated.limit_value,
                    case when label_a.is_excess = 1 then label_b.seed_id else label_a.seed_id end,
                    case when label_a.is_excess = 1 then label_a.seed_id else label_b.seed_id end,
                    {{ round }}
                from {{ rel.scope_edges }} as edges
                inner join {{ rel.labels }} as label_a on edges.node_a = label_a.node_id
                inner join {{ rel.labels }} as label_b on edges.node_b = label_b.node_id
                inner join {{ rel.scope }} as scope on edges.node_a = scope.node_id
                inner join {{ rel.violated }} as violated
                    on label_a.component_id = violated.component_id
                where label_a.seed_id <> label_b.seed_id
                    and (label_a.is_excess = 1 or label_b.is_excess = 1)
            {%- endcall %}
            {#- Cap: cut loose every identifier beyond the cap. -#}
            {% call statement('limits_drop_beyond_cap') -%}
                insert into {{ rel.dropped }}
                with ranked as (
                    select scope.node_id, scope.component_id, scope.original_component_id,
                        capped.found_count,
                        row_number() over (
                            partition by scope.component_id
                            order by scope.type_priority, scope.identifier_type,
                                scope.seed_rank, scope.node_id
                        ) as position
                    from {{ rel.scope }} as scope
                    inner join {{ rel.capped }} as capped
                        on scope.component_id = capped.component_id
                ),
                beyond as (
                    select * from ranked where position > {{ cap }}
                )
                select edges.node_a, edges.node_b, min(beyond.original_component_id),
                    'identifier_cap', cast(null as varchar(32)), min(beyond.found_count),
                    {{ cap }}, cast(null as bigint), min(beyond.node_id), {{ round }}
                from {{ rel.scope_edges }} as edges
                inner join beyond
                    on edges.node_a = beyond.node_id or edges.node_b = beyond.node_id
                group by edges.node_a, edges.node_b
            {%- endcall %}
            {#- Recompute components of what was just split; nothing else can have changed. -#}
            {% do adapter.drop_relation(rel.built) %}
            {% call statement('limits_split_edges') -%}
                create table {{ rel.built }} as
                select edges.node_a, edges.node_b
                from {{ rel.scope_edges }} as edges
                left join {{ rel.dropped }} as dropped
                    on edges.node_a = dropped.node_a and edges.node_b = dropped.node_b
                where dropped.node_a is null
            {%- endcall %}
            {% do tessera.analyze_table(rel.built) %}
            {%- do tessera.large_small_star(rel.built, rel.components) -%}
            {% do adapter.drop_relation(rel.labels) %}
            {% call statement('limits_next_scope') -%}
                create table {{ rel.labels }} as
                select scope.node_id, scope.original_component_id,
                    coalesce(components.component_id, scope.node_id) as component_id,
                    scope.identifier_type, scope.type_priority, scope.seed_rank, scope.limit_key
                from {{ rel.scope }} as scope
                left join {{ rel.components }} as components
                    on scope.node_id = components.node_id
                where scope.component_id in (
                    select component_id from {{ rel.violated }}
                    union all
                    select component_id from {{ rel.capped }}
                )
            {%- endcall %}
            {% do tessera.analyze_table(rel.labels) %}
            {% do adapter.drop_relation(rel.scope) %}
            {% do adapter.rename_relation(rel.labels, rel.scope) %}
        {%- endif -%}
    {%- endfor %}

    {%- if not state.done -%}
        {{ exceptions.raise_compiler_error(
            "identity_limits: limits still broken after " ~ max_rounds ~ " rounds in " ~ this) }}
    {%- endif -%}
    {% do log("identity_limits: " ~ this ~ " settled after " ~ state.rounds ~ " rounds", info=true) %}

    {%- set stamped_drops -%}
        select dropped.*, {{ tessera.run_timestamp() }} as _built_at,
            {{ settings }} as limits_settings
        from {{ rel.dropped }} as dropped
    {%- endset -%}
    {%- if incremental %}
        {% call statement('main') -%}
            insert into {{ target_relation }} {{ stamped_drops }}
        {%- endcall %}
    {%- else %}
        {% call statement('main') -%}
            create table {{ rel.stamped }} as {{ stamped_drops }}
        {%- endcall %}
        {% do adapter.drop_relation(target_relation) %}
        {% do adapter.rename_relation(rel.stamped, target_relation) %}
    {%- endif %}
    {%- for name in names %}{% do adapter.drop_relation(rel[name]) %}{% endfor -%}
    {{ run_hooks(post_hooks) }}
    {% do adapter.commit() %}
    {{ return({'relations': [target_relation]}) }}
{%- endmaterialization %}


{#- Post-hook of identity_limit_drops: delete the stored drops whose component was solved again
    after them (identity_components._built_at), or is gone; the drops found by this run stay. -#}
{% macro delete_stale_limit_drops() -%}
    {%- if execute and tessera.limits_solve_incrementally() -%}
        delete from {{ this }} as stored
        where
            stored._built_at < {{ tessera.run_timestamp() }}
            and not exists (
                select 1 from {{ ref('identity_components') }} as components
                where
                    components.node_id = stored.node_a
                    and components._built_at <= stored._built_at
            )
    {%- endif -%}
{%- endmacro %}


{#- The settings that decide the drops, as a SQL string literal: the limits, the cap and the
    type priority. -#}
{% macro identity_limits_settings() -%}
    {%- set settings = tojson({
        'limits': var('tessera_identity_limits'),
        'cap': var('tessera_max_identifiers_per_customer'),
        'type_priority': var('tessera_identity_type_priority'),
    }, sort_keys=true) -%}
    {{ return("'" ~ settings | replace("'", "''") ~ "'") }}
{%- endmacro %}


{#- Whether identity_limit_drops works on the re-solved components only: it may
    (tessera.solves_incrementally()), and every stored drop was found under today's settings;
    a changed limit, cap or type priority makes the run work on every component. -#}
{% macro limits_solve_incrementally() -%}
    {%- if not tessera.solves_incrementally() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if 'limits_settings' not in tessera.relation_columns(this) -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set other = run_query(
        "select count(*) from " ~ this ~ " where limits_settings <> "
        ~ tessera.identity_limits_settings()) -%}
    {{ return(other.columns[0].values()[0] == 0) }}
{%- endmacro %}
