"""Opt-in fuzzy matching of customers: suggested links the deterministic identity graph missed.

The identity graph joins customers only on identifiers they share exactly (an email, a phone, a
user id). People also re-register with a new phone, another email provider, a nickname or a typo;
those customers stay apart. `suggest_matches` scores candidate pairs of customers with a
Fellegi-Sunter model (Splink 5 on an in-memory DuckDB), trained unsupervised on the customers
themselves, and returns the pairs likely to be one person with the comparison levels behind each
score, so a reviewer sees *why*. Nothing here writes links: a suggestion at or above
`AUTO_APPLY_PROBABILITY` is safe enough to apply as a link, the rest are for review.

`labelled_duplicates` makes customers with known duplicates, for the tests and benchmarks, and
`evaluate` measures suggestions against them.
"""

from __future__ import annotations

import logging
import random
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

# Suggestions below this probability are not returned: they are for a person to review, so the
# bar is low. On labelled_duplicates (10% of people duplicated, seeds 1-3) the pairs at or above
# it held 95-96% of the true pairs at 3,000 people and 92% at 20,000 (at 0.2: 92-93% and
# 88-89%); about two in three of them are true at 20,000 people. What they miss is mostly
# duplicates whose only evidence is a common name.
SUGGEST_MIN_PROBABILITY = 0.05
# Suggestions at or above this probability may be applied as links without review. Measured on
# labelled_duplicates: precision 0.996-1.000 (seeds 1-6, 3,000 people) and 0.998 (20,000 people)
# at this threshold, against the 0.98 Tessera requires; at 0.9 it falls to 0.983-0.986.
AUTO_APPLY_PROBABILITY = 0.98

INPUT_COLUMNS = ("customer_id", "first_name", "last_name", "email", "phone")

OUTPUT_SCHEMA = pa.schema(
    [
        pa.field("customer_id_l", pa.string(), nullable=False),
        pa.field("customer_id_r", pa.string(), nullable=False),
        pa.field("match_probability", pa.float64(), nullable=False),
        pa.field("match_weight", pa.float64(), nullable=False),
        pa.field("comparisons", pa.string(), nullable=False),
    ]
)

# A customer is a duplicate of another with this probability before any evidence: the prior is
# expressed per customer, so it holds whatever the number of customers (see _prior).
_DUPLICATE_SHARE_PRIOR = 0.05
# Pairs sampled to estimate how often non-matching customers agree at each comparison level.
_U_MAX_PAIRS = 1e6 + 1  # not 1e6 exactly: Splink warns that its default is small
# An email local part or phone shared by more customers than this is junk ("test", a shop's
# number) and is not used to form candidate pairs: its block would be quadratic and worthless.
_MAX_IDENTIFIER_BLOCK = 50

# Nicknames: each line is a formal name and the names it goes by. A name may belong to several
# groups (chris: christopher, christina, christine); two first names are nicknames of each other
# when they share a group.
NICKNAMES: dict[str, tuple[str, ...]] = {
    "abigail": ("abby", "abbie", "gail"),
    "albert": ("al", "bert", "bertie"),
    "alexander": ("alex", "alec", "sasha", "xander"),
    "alexandra": ("alex", "alexa", "sandra", "sasha", "lexi"),
    "alfred": ("al", "alf", "fred", "freddie"),
    "alice": ("ally", "allie"),
    "amanda": ("mandy", "manda"),
    "andrew": ("andy", "drew"),
    "angela": ("angie",),
    "anthony": ("tony", "ant"),
    "barbara": ("barb", "barbie", "babs"),
    "benjamin": ("ben", "benny", "benji"),
    "catherine": ("cathy", "cat", "kate", "katie"),
    "charles": ("charlie", "chuck", "chas", "chaz"),
    "christina": ("chris", "tina", "chrissy"),
    "christine": ("chris", "chrissy"),
    "christopher": ("chris", "kit", "topher"),
    "cynthia": ("cindy",),
    "daniel": ("dan", "danny"),
    "david": ("dave", "davey"),
    "deborah": ("deb", "debbie", "debra"),
    "donald": ("don", "donny"),
    "dorothy": ("dot", "dottie", "dolly"),
    "douglas": ("doug",),
    "edward": ("ed", "eddie", "ted", "ned"),
    "eleanor": ("ellie", "nell", "nora"),
    "elizabeth": ("liz", "beth", "betty", "eliza", "lisa", "libby", "betsy"),
    "emily": ("em", "emmy"),
    "evelyn": ("evie", "eve"),
    "frances": ("fran", "frannie"),
    "francis": ("frank", "frankie"),
    "frederick": ("fred", "freddie", "fritz"),
    "gabriel": ("gabe",),
    "gabrielle": ("gabby", "gabi"),
    "gerald": ("gerry", "jerry"),
    "gregory": ("greg",),
    "harold": ("harry", "hal"),
    "henry": ("hank", "harry", "hal"),
    "isabella": ("bella", "izzy", "isabel"),
    "jacqueline": ("jackie", "jacky"),
    "james": ("jim", "jimmy", "jamie"),
    "jennifer": ("jen", "jenny", "jenn"),
    "jessica": ("jess", "jessie"),
    "john": ("jack", "johnny", "jon"),
    "jonathan": ("jon", "johnny", "nathan"),
    "joseph": ("joe", "joey"),
    "joshua": ("josh",),
    "judith": ("judy", "jude"),
    "katherine": ("kate", "kathy", "katie", "kat", "kay"),
    "kenneth": ("ken", "kenny"),
    "kimberly": ("kim", "kimmy"),
    "lawrence": ("larry", "laurie"),
    "leonard": ("leo", "len", "lenny"),
    "margaret": ("maggie", "meg", "peggy", "marge", "greta"),
    "matthew": ("matt", "matty"),
    "melissa": ("mel", "missy", "lissa"),
    "michael": ("mike", "mikey", "mick"),
    "nathaniel": ("nate", "nathan", "nat"),
    "natalie": ("nat", "talia"),
    "nicholas": ("nick", "nicky", "nico"),
    "olivia": ("liv", "livvy"),
    "pamela": ("pam", "pammy"),
    "patricia": ("pat", "patty", "trish", "tricia"),
    "patrick": ("pat", "paddy", "rick"),
    "peter": ("pete",),
    "phillip": ("phil",),
    "raymond": ("ray",),
    "rebecca": ("becky", "becca"),
    "richard": ("rick", "rich", "dick", "ricky", "richie"),
    "robert": ("bob", "rob", "bobby", "robbie", "bert"),
    "ronald": ("ron", "ronnie"),
    "russell": ("russ",),
    "samantha": ("sam", "sammy"),
    "samuel": ("sam", "sammy"),
    "sophia": ("sophie",),
    "stephanie": ("steph", "stephie"),
    "stephen": ("steve", "stevie"),
    "steven": ("steve", "stevie"),
    "susan": ("sue", "susie", "suzy"),
    "teresa": ("terry", "tess", "tessa"),
    "terrence": ("terry",),
    "theodore": ("ted", "teddy", "theo"),
    "thomas": ("tom", "tommy"),
    "timothy": ("tim", "timmy"),
    "valerie": ("val",),
    "victoria": ("vicky", "tori", "vic"),
    "vincent": ("vince", "vinny"),
    "walter": ("walt", "wally"),
    "william": ("bill", "will", "billy", "willy", "liam"),
    "zachary": ("zach", "zack"),
}

_LOGGER_NAMES = ("splink",)
# m = u for a level that carries no evidence of its own: its Bayes factor is 1.
_NEUTRAL_PROBABILITY = 1e-4


@dataclass(frozen=True)
class _Level:
    """One comparison level: its SQL over the prepared columns (suffixed _l/_r) and its label."""

    label: str
    sql: str
    # A level too rare for random sampling to observe among non-matches gets this u, fixed.
    fixed_u: float | None = None
    # A level that carries no evidence of its own (counted by another comparison).
    neutral: bool = False
    # Term frequency adjustment on this column: agreeing on a rare name says more than on Smith.
    tf_column: str | None = None


@dataclass(frozen=True)
class _Field:
    """A comparison: its name (as shown in `comparisons`), null test, levels best first."""

    name: str
    null_sql: str
    levels: tuple[_Level, ...]

    def labels_by_gamma(self) -> dict[int, str]:
        """Splink's comparison vector value -> label: -1 for no data, then the levels count down
        from len(levels) - 1 to 0 (the catch-all), as Splink numbers them."""
        labels = {-1: "no data"}
        for index, level in enumerate(self.levels):
            labels[len(self.levels) - 1 - index] = level.label
        return labels


def _jw(column: str, threshold: float) -> str:
    return f"jaro_winkler_similarity({column}_l, {column}_r) >= {threshold}"


_FIELDS: tuple[_Field, ...] = (
    _Field(
        "first_name",
        "first_name_l is null or first_name_r is null",
        (
            _Level("exact", "first_name_l = first_name_r", tf_column="first_name"),
            _Level(
                "swapped with last_name",
                "first_name_l = last_name_r and last_name_l = first_name_r",
                # Both names agreeing crosswise: rarer among other people than both agreeing.
                fixed_u=1e-6,
            ),
            _Level(
                "swapped with last_name, similar",
                "jaro_winkler_similarity(first_name_l, last_name_r) >= 0.9 "
                "and jaro_winkler_similarity(last_name_l, first_name_r) >= 0.9",
                fixed_u=1e-5,
            ),
            _Level(
                "nickname",
                "len(list_intersect(first_name_groups_l, first_name_groups_r)) > 0",
                fixed_u=2e-3,
            ),
            _Level("similar (jaro-winkler >= 0.92)", _jw("first_name", 0.92)),
            _Level("similar (jaro-winkler >= 0.85)", _jw("first_name", 0.85)),
            _Level("different", "true"),
        ),
    ),
    _Field(
        "last_name",
        "last_name_l is null or last_name_r is null",
        (
            _Level("exact", "last_name_l = last_name_r", tf_column="last_name"),
            _Level(
                "swapped with first_name",
                "first_name_l = last_name_r and last_name_l = first_name_r",
                neutral=True,
            ),
            _Level("one edit", "levenshtein(last_name_l, last_name_r) <= 1"),
            _Level("similar (jaro-winkler >= 0.9)", _jw("last_name", 0.9)),
            _Level("different", "true"),
        ),
    ),
    _Field(
        "email",
        "email_l is null or email_r is null",
        (
            _Level("exact", "email_l = email_r", fixed_u=1e-5),
            # A local part with digits (jsmith84) is the person's own; one of only a name
            # (john.smith) is shared by namesakes at other providers, so it counts for less.
            _Level(
                "same local part",
                "email_local_l = email_local_r and email_local_digits_l is not null",
            ),
            # Random pairs rarely share one, but namesakes often do: its u is that among pairs
            # whose names agree, about u overall / u of an exact last name.
            _Level("same local part (name only)", "email_local_l = email_local_r", fixed_u=2e-3),
            # A typo in the letters of a local part with the same digits. Without digits, one
            # edit is another initial (smithj, smithm); other digits (jsmith1, jsmith12) are
            # other people.
            _Level(
                "local part one edit",
                "email_local_digits_l = email_local_digits_r "
                "and damerau_levenshtein(email_local_l, email_local_r) <= 1",
                fixed_u=1e-5,
            ),
            _Level("different", "true"),
        ),
    ),
    _Field(
        "phone",
        "phone_l is null or phone_r is null",
        (
            _Level("exact", "phone_l = phone_r", fixed_u=1e-5),
            _Level("same last 7 digits", "phone_last7_l = phone_last7_r", fixed_u=1e-5),
            _Level("one digit off", "damerau_levenshtein(phone_l, phone_r) <= 1", fixed_u=2e-5),
            _Level("different", "true"),
        ),
    ),
)

# Candidate pairs: customers are compared only when one of these holds. Each catches duplicates
# the others miss: a typo in the last name (email, phone, first name + part of the phone), a new
# phone and email (last name), swapped names (the swap join).
_BLOCKING_RULES = (
    "l.last_name = r.last_name",
    "l.email_local_block = r.email_local_block",
    "l.phone_last7_block = r.phone_last7_block",
    "l.first_name_key = r.first_name_key and l.phone_head = r.phone_head",
    "l.first_name_key = r.first_name_key and l.phone_tail = r.phone_tail",
    "l.first_name = r.last_name and l.last_name = r.first_name",
)
# Expectation maximisation runs on pairs from these rules; each estimates m for the comparisons
# it does not block on, so between them every comparison is trained.
_TRAINING_RULES = (
    "l.email_local_block = r.email_local_block",
    "l.first_name = r.first_name and l.last_name = r.last_name",
)


@contextmanager
def _quiet() -> Iterator[None]:
    """Splink's INFO chatter and its advisory warnings stay out of Tessera's logs, and its SQL
    parser's deprecation notices out of the console."""
    loggers = [logging.getLogger(name) for name in _LOGGER_NAMES]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _validate(records: pa.Table) -> None:
    missing = [c for c in INPUT_COLUMNS if c not in records.column_names]
    if missing:
        raise ValueError(
            f"records are missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(INPUT_COLUMNS)}, got {', '.join(records.column_names)}"
        )
    ids = records.column("customer_id")
    if ids.null_count:
        raise ValueError(f"customer_id is null in {ids.null_count} record(s)")
    counts = pa.compute.value_counts(ids.cast(pa.string()))
    duplicated = [
        str(v)
        for v, n in zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        )
        if n > 1
    ]
    if duplicated:
        shown = ", ".join(sorted(duplicated)[:5])
        raise ValueError(
            f"customer_id must be unique: {len(duplicated)} id(s) repeat, e.g. {shown}"
        )


def _nickname_table() -> pa.Table:
    """(name, nickname_group) for every formal name and nickname: a formal name is its group."""
    names: list[str] = []
    groups: list[str] = []
    for formal, nicknames in NICKNAMES.items():
        for name in (formal, *nicknames):
            names.append(name)
            groups.append(formal)
    return pa.table({"name": names, "nickname_group": groups})


def _prepare(con: duckdb.DuckDBPyConnection, records: pa.Table) -> pa.Table:
    """The columns the model compares: trimmed lowercase names, nickname groups, the email's
    local part (without a +tag), phone digits and their parts, and the blocking keys."""
    con.register("tessera_fuzzy_input", records.select(list(INPUT_COLUMNS)))
    con.register("tessera_fuzzy_nicknames", _nickname_table())
    return con.sql(
        f"""
        with cleaned as (
            select
                cast(customer_id as varchar) as customer_id,
                nullif(lower(trim(cast(first_name as varchar))), '') as first_name,
                nullif(lower(trim(cast(last_name as varchar))), '') as last_name,
                nullif(lower(trim(cast(email as varchar))), '') as email,
                nullif(regexp_replace(cast(phone as varchar), '[^0-9]', '', 'g'), '') as phone
            from tessera_fuzzy_input
        ),
        parts as (
            select
                *,
                nullif(split_part(split_part(email, '@', 1), '+', 1), '') as email_local,
                nullif(regexp_replace(split_part(split_part(email, '@', 1), '+', 1), '[^0-9]', '',
                    'g'), '') as email_local_digits,
                case when length(phone) >= 7 then right(phone, 7) end as phone_last7,
                case when length(phone) >= 7 then left(phone, length(phone) - 4) end
                    as phone_head,
                case when length(phone) >= 7 then right(phone, 4) end as phone_tail
            from cleaned
        ),
        groups as (
            select p.customer_id, list(n.nickname_group order by n.nickname_group) as g
            from parts p join tessera_fuzzy_nicknames n on n.name = p.first_name
            group by p.customer_id
        )
        select
            parts.*,
            coalesce(groups.g, [parts.first_name]) as first_name_groups,
            -- One key per name and its nicknames (bill, william: william), for blocking.
            coalesce(groups.g[1], parts.first_name) as first_name_key,
            case when count(*) over (partition by email_local) <= {_MAX_IDENTIFIER_BLOCK}
                then email_local end as email_local_block,
            case when count(*) over (partition by phone_last7) <= {_MAX_IDENTIFIER_BLOCK}
                then phone_last7 end as phone_last7_block
        from parts left join groups using (customer_id)
        order by customer_id
        """
    ).to_arrow_table()


def _has_pairs(con: duckdb.DuckDBPyConnection, rules: tuple[str, ...]) -> bool:
    """Whether any of the blocking ``rules`` pairs two of the prepared customers (one equi-join
    per rule: an OR of them would be a nested loop)."""
    for rule in rules:
        found = con.sql(
            "select 1 from tessera_fuzzy_prepared l join tessera_fuzzy_prepared r "
            f"on {rule} where l.customer_id < r.customer_id limit 1"
        ).fetchall()
        if found:
            return True
    return False


def _prior(count: int) -> float:
    """Probability two random customers are one person, from the per-customer prior: about
    count * share true pairs among count * (count - 1) / 2."""
    return min(0.5, 2 * _DUPLICATE_SHARE_PRIOR / max(count - 1, 1))


def _settings(count: int) -> Any:
    from splink import SettingsCreator
    from splink import comparison_level_library as cll
    from splink import comparison_library as cl

    comparisons = []
    for field in _FIELDS:
        levels: list[Any] = [
            cll.CustomLevel(field.null_sql, "no data").configure(is_null_level=True)
        ]
        for level in field.levels:
            creator = cll.CustomLevel(level.sql, level.label)
            if level.neutral:
                creator.configure(
                    m_probability=_NEUTRAL_PROBABILITY,
                    u_probability=_NEUTRAL_PROBABILITY,
                    fix_m_probability=True,
                    fix_u_probability=True,
                )
            elif level.fixed_u is not None:
                creator.configure(u_probability=level.fixed_u, fix_u_probability=True)
            if level.tf_column is not None:
                creator.configure(tf_adjustment_column=level.tf_column)
            levels.append(creator)
        comparisons.append(cl.CustomComparison(levels, field.name, field.name))
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="customer_id",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=list(_BLOCKING_RULES),
        probability_two_random_records_match=_prior(count),
        # The gamma_ columns (which level each comparison took) come with the matching columns.
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=False,
    )


def _empty() -> pa.Table:
    return OUTPUT_SCHEMA.empty_table()


def suggest_matches(
    records: pa.Table,
    *,
    min_probability: float = SUGGEST_MIN_PROBABILITY,
    seed: int = 0,
) -> pa.Table:
    """Pairs of customers likely to be one person, scored by a model trained on ``records``.

    ``records`` has one row per customer: customer_id (unique) and first_name, last_name, email
    (lowercase), phone (E.164); any but customer_id may be null. Returns OUTPUT_SCHEMA: one row
    per candidate pair with match_probability >= ``min_probability``, customer_id_l <
    customer_id_r, and the comparison levels that drove the score, sorted by probability
    (highest first), then ids. The same records and seed give the same table.
    """
    if not 0.0 <= min_probability <= 1.0:
        raise ValueError(f"min_probability must be within [0, 1], got {min_probability!r}")
    _validate(records)
    if records.num_rows < 2:
        return _empty()

    with _quiet():
        from splink import DuckDBAPI, Linker

        con = duckdb.connect(":memory:")
        try:
            prepared = _prepare(con, records)
            con.register("tessera_fuzzy_prepared", prepared)
            if not _has_pairs(con, _BLOCKING_RULES):
                return _empty()
            db_api = DuckDBAPI(con)
            frame = db_api.register(prepared, dataset_display_name="tessera_customers")
            linker = Linker(frame, _settings(prepared.num_rows), log_level=None)
            linker.training.estimate_u_using_random_sampling(
                max_pairs=_U_MAX_PAIRS, seed=seed, min_count_per_level=None, num_chunks=1
            )
            # EM sums probabilities over pairs; one thread sums them in one order, so the
            # trained model (and every score) is the same on every run.
            con.execute("set threads to 1")
            for rule in _TRAINING_RULES:
                if _has_pairs(con, (rule,)):
                    linker.training.estimate_parameters_using_expectation_maximisation(
                        rule, estimate_without_term_frequencies=True
                    )
            con.execute("reset threads")
            scored = linker.inference.predict(
                threshold_match_probability=min_probability, warning_mode="never"
            )
            columns = ", ".join(f"gamma_{f.name}" for f in _FIELDS)
            rows = con.sql(
                f"select customer_id_l, customer_id_r, match_probability, match_weight, {columns} "
                f"from {scored.physical_name}"
            ).fetchall()
        finally:
            con.close()
    return _output(rows, min_probability)


def _output(rows: list[tuple[Any, ...]], min_probability: float) -> pa.Table:
    labels = [f.labels_by_gamma() for f in _FIELDS]
    out: list[tuple[str, str, float, float, str]] = []
    for left, right, probability, weight, *gammas in rows:
        if probability is None or probability < min_probability or left == right:
            continue
        described = "; ".join(
            f"{f.name}: {lab[int(g)]}" for f, lab, g in zip(_FIELDS, labels, gammas, strict=True)
        )
        low, high = (left, right) if left < right else (right, left)
        out.append((low, high, float(probability), float(weight), described))
    out.sort(key=lambda r: (-r[2], r[0], r[1]))
    if not out:
        return _empty()
    columns = list(zip(*out, strict=True))
    return pa.Table.from_arrays(
        [pa.array(list(c), type=f.type) for c, f in zip(columns, OUTPUT_SCHEMA, strict=True)],
        schema=OUTPUT_SCHEMA,
    )


# ---------------------------------------------------------------------------------------------
# Labelled synthetic customers, for tests and benchmarks.

# Most common first, as names are: a few names are shared by many customers.
_FIRST_NAMES = """
james mary john patricia robert jennifer michael linda william elizabeth david barbara richard
susan joseph jessica thomas sarah charles karen christopher lisa daniel nancy matthew betty
anthony margaret mark sandra donald ashley steven kimberly paul emily andrew donna joshua michelle
kenneth carol kevin amanda brian dorothy george melissa timothy deborah ronald stephanie edward
rebecca jason sharon jeffrey laura ryan cynthia jacob kathleen gary amy nicholas angela eric
shirley jonathan anna stephen brenda larry pamela justin emma scott nicole brandon helen benjamin
samantha samuel katherine gregory christine alexander debra frank rachel patrick carolyn raymond
janet jack catherine dennis maria jerry heather tyler diane aaron ruth jose julie adam olivia
nathan joyce henry virginia douglas victoria zachary kelly peter lauren kyle christina ethan joan
walter evelyn noah judith jeremy megan christian andrea keith cheryl roger hannah terry jacqueline
gerald martha harold gloria sean teresa austin ann carl sara arthur madison lawrence frances dylan
kathryn jesse janice jordan jean bryan abigail billy alice joe judy bruce sophia gabriel grace
logan denise albert amber willie doris alan marilyn juan danielle wayne beverly elijah isabella
randy theresa roy diana vincent natalie ralph brittany eugene charlotte russell marie bobby kayla
mason alexis philip lori louis alexandra priya wei mohammed fatima carlos luis ana sofia mateo
hiroshi yuki aisha omar ravi anil mei ling olga ivan dmitri sven ingrid lars pierre diego lucia
elena marco giulia ahmed layla kwame amara nia tariq chloe zoe leo hugo ines astrid kenji
""".split()

_LAST_NAMES = """
smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez
wilson anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez clark
ramirez lewis robinson walker young allen king wright scott torres nguyen hill flores green adams
nelson baker hall rivera campbell mitchell carter roberts gomez phillips evans turner diaz parker
cruz edwards collins reyes stewart morris morales murphy cook rogers gutierrez ortiz morgan cooper
peterson bailey reed kelly howard ramos kim cox ward richardson watson brooks chavez wood james
bennett gray mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster
jimenez powell jenkins perry russell sullivan bell coleman butler henderson barnes gonzales fisher
vasquez simmons romero jordan patterson alexander hamilton graham reynolds griffin wallace moreno
west cole hayes bryant herrera gibson ellis tran medina aguilar stevens murray ford castro marshall
owens harrison fernandez mcdonald woods washington kennedy wells vargas henry chen freeman webb
tucker guzman burns crawford olson simpson porter hunter gordon mendez silva shaw snyder mason
dixon munoz hunt hicks holmes palmer wagner black robertson boyd rose stone salazar fox warren
mills meyer rice schmidt garza daniels ferguson nichols stephens soto weaver ryan gardner payne
grant dunn kelley spencer hawkins arnold pierce vazquez hansen peters santos hart bradley knight
elliott cunningham duncan armstrong hudson carroll lane riley andrews alvarado ray delgado berry
perkins hoffman johnston matthews pena richards contreras willis carpenter lawrence sandoval
guerrero george chapman rios estrada ortega watkins greene nunez wheeler valdez harper burke
larson santiago maldonado morrison franklin carlson austin dominguez carr lawson jacobs obrien
lynch singh vega bishop montgomery oliver jensen harvey williamson gilbert dean sims espinoza
howell li wong reid hanson le mccoy garrett burton fuller wang weber welch rojas lucas marquez
fields park yang little banks padilla day walsh bowman schultz luna fowler mejia davidson acosta
brewer may holland juarez newman pearson curtis cortez douglas schneider joseph barrett navarro
figueroa keller avila wade molina stanley hopkins campos barnett bates chambers caldwell beck
lambert miranda byrd craig ayala lowe frazier powers neal leonard gregory carrillo sutton fleming
rhodes shelton schwartz norris jennings watts duran walters cohen mcdaniel moran parks steele
vaughn becker holt deleon barker terry hale leon hail benson haynes horton miles lyons pham graves
bush thornton wolfe warner cabrera mckinney mann zimmerman dawson lara fletcher page mccarthy love
robles cervantes solis erickson reeves chang klein salinas fuentes baldwin daniel simon velasquez
hardy higgins aguirre lin cummings chandler sharp barber bowen ochoa dennis robbins liu ramsey
francis griffith paul blair oconnor cardenas pacheco cross calderon quinn moss swanson chan rivas
khan rodgers serrano fitzgerald rosales stevenson christensen manning gill curry mclaughlin
harmon mcgee gross doyle garner newton burgess reese walton blake trujillo adkins brady goodman
roman webster goodwin fischer huang potter delacruz montoya todd wu hines mullins castaneda malone
cannon tate mack sherman hubbard hodges zhang guerra wolf valencia saunders franco rowe gallagher
farmer hammond hampton townsend ingram wise gallegos clarke barton schroeder maxwell waters logan
camacho strickland norman person colon parsons frank harrington glover osborne buchanan casey
floyd patton ibarra ball tyler suarez bowers orozco salas cobb gibbs andrade bauer conner moody
escobar mcguire lloyd mueller hartman french kramer mcbride pope lindsey velazquez norton mccormick
sparks flynn yates hogan marsh macias villanueva zamora pratt stokes owen ballard lang brock
villarreal charles drake barrera cain patrick pineda burnett mercado santana shepherd bautista
""".split()

_PROVIDERS = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "aol.com",
    "proton.me",
    "fastmail.com",
    "comcast.net",
    "mail.com",
)
_AREA_CODES = (
    "212 213 312 415 408 510 617 646 702 713 718 773 786 805 818 904 206 303 305 404 480 503 512 "
    "602 614 619 650 704 720 737 347 917 929 202 215 267 301 410 443 470 571 678 757 919 949"
).split()
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def _weights(count: int, flatten: float) -> list[float]:
    """Zipf-like weights: rank r gets 1 / (r + flatten), so the top names are shared by many
    people but no single name dominates (the commonest last name is ~2-3% of people)."""
    return [1.0 / (rank + flatten) for rank in range(1, count + 1)]


_FIRST_WEIGHTS = _weights(len(_FIRST_NAMES), 8.0)
_LAST_WEIGHTS = _weights(len(_LAST_NAMES), 12.0)
_NICKNAMES_OF = {formal: nicknames for formal, nicknames in NICKNAMES.items()}


@dataclass
class _Person:
    first: str
    last: str
    email: str | None
    phone: str | None


class _Generator:
    """Draws people and their duplicates from one seeded random stream."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.emails: set[str] = set()
        self.phones: set[str] = set()

    def typo(self, word: str) -> str:
        """One edit (substitution, insertion or deletion), never of the first letter, as a
        typist makes it; the result differs from ``word``."""
        rng = self.rng
        if len(word) < 3:
            return word + rng.choice(_ALPHABET)
        while True:
            at = rng.randrange(1, len(word))
            kind = rng.random()
            if kind < 0.4:
                out = word[:at] + rng.choice(_ALPHABET) + word[at + 1 :]
            elif kind < 0.7:
                out = word[:at] + rng.choice(_ALPHABET) + word[at:]
            else:
                out = word[:at] + word[at + 1 :]
            if out != word:
                return out

    def local_part(self, first: str, last: str) -> str:
        rng = self.rng
        style = rng.randrange(6)
        base = (
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}{last}",
            f"{first}_{last}",
            f"{last}{first[0]}",
            f"{first}{last[0]}",
        )[style]
        if rng.random() < 0.75:
            base += str(rng.randrange(1, 100 if rng.random() < 0.5 else 10_000))
        return base

    def new_email(self, first: str, last: str, local: str | None = None) -> str:
        """An address no one else has: ``local`` at some provider, or a new local part."""
        for _ in range(1_000):
            candidate_local = local or self.local_part(first, last)
            email = f"{candidate_local}@{self.rng.choice(_PROVIDERS)}"
            if email not in self.emails:
                self.emails.add(email)
                return email
            local = None if local is None or self.rng.random() < 0.2 else local
        raise RuntimeError("could not draw a new email address")

    def new_phone(self) -> str:
        while True:
            phone = (
                f"+1{self.rng.choice(_AREA_CODES)}{self.rng.randrange(2, 10)}"
                f"{self.rng.randrange(0, 1_000_000):06d}"
            )
            if phone not in self.phones:
                self.phones.add(phone)
                return phone

    def mistyped_phone(self, phone: str) -> str:
        """One digit of the subscriber number wrong: a number no one else has."""
        for _ in range(100):
            at = self.rng.randrange(len(phone) - 7, len(phone))
            digit = str(self.rng.randrange(10))
            out = phone[:at] + digit + phone[at + 1 :]
            if out != phone and out not in self.phones:
                self.phones.add(out)
                return out
        return self.new_phone()

    def person(self) -> _Person:
        rng = self.rng
        # Namesakes (same first and last name, different people) come from the name frequencies
        # as in life: ~200 pairs among 3,000 people, nearly all of common names.
        first = rng.choices(_FIRST_NAMES, _FIRST_WEIGHTS)[0]
        last = rng.choices(_LAST_NAMES, _LAST_WEIGHTS)[0]
        if first in _NICKNAMES_OF and rng.random() < 0.15:
            first = rng.choice(_NICKNAMES_OF[first])
        email = None if rng.random() < 0.05 else self.new_email(first, last)
        phone = None if rng.random() < 0.1 else self.new_phone()
        return _Person(first, last, email, phone)

    def duplicate(self, person: _Person) -> _Person:
        """The same person as the identity graph saw them again: no identifier in common."""
        rng = self.rng
        first, last = person.first, person.last
        formal = next((f for f, nicks in NICKNAMES.items() if first in nicks), None)
        if first in _NICKNAMES_OF and rng.random() < 0.3:
            first = rng.choice(_NICKNAMES_OF[first])
        elif formal is not None and rng.random() < 0.5:
            first = formal
        if rng.random() < 0.12:
            first = self.typo(first)
        if rng.random() < 0.12:
            last = self.typo(last)
        if rng.random() < 0.05:
            first, last = last, first

        email: str | None
        contact = rng.random()
        email_linked = False
        if person.email is None:
            email = None if rng.random() < 0.5 else self.new_email(first, last)
        elif contact < 0.7:
            # Another provider, the same local part.
            email = self.new_email(first, last, person.email.split("@")[0])
            email_linked = True
        elif contact < 0.85:
            email = None
        else:
            email = self.new_email(first, last)

        phone: str | None
        draw = rng.random()
        if person.phone is not None and draw < (0.25 if email_linked else 0.85):
            phone = self.mistyped_phone(person.phone)
        elif draw < 0.8:
            phone = self.new_phone()
        else:
            phone = None
        return _Person(first, last, email, phone)


def _styled(name: str, rng: random.Random) -> str:
    """A name as a customer typed it: mostly capitalised, sometimes in capitals or lowercase."""
    roll = rng.random()
    if roll < 0.9:
        return name.capitalize()
    return name.upper() if roll < 0.95 else name


def labelled_duplicates(
    people: int, duplicate_share: float, seed: int
) -> tuple[pa.Table, set[tuple[str, str]]]:
    """Synthetic customers with known duplicates: (records, true pairs).

    ``people`` distinct people, common names shared by many and some namesakes (same first and
    last name, different people). A ``duplicate_share`` of them registered again (a few twice)
    with nothing the deterministic graph joins on: another email provider or address or none, a
    new, mistyped or no phone; and with a nickname, a one-letter typo, or first and last name
    swapped. Records follow suggest_matches's input; the pairs are (customer_id_l,
    customer_id_r), l < r, of every two records of one person. Deterministic in ``seed``.
    """
    if people < 0:
        raise ValueError(f"people must be >= 0, got {people}")
    if not 0.0 <= duplicate_share <= 1.0:
        raise ValueError(f"duplicate_share must be within [0, 1], got {duplicate_share!r}")
    gen = _Generator(seed)
    rng = gen.rng
    persons = [gen.person() for _ in range(people)]
    records: list[tuple[int, _Person]] = list(enumerate(persons))
    for index in sorted(rng.sample(range(people), round(people * duplicate_share))):
        copies = 2 if rng.random() < 0.05 else 1
        records.extend((index, gen.duplicate(persons[index])) for _ in range(copies))

    # Customer ids in shuffled order, so an id says nothing about who is a duplicate.
    order = list(range(len(records)))
    rng.shuffle(order)
    ids = [f"c{position:07d}" for position in order]
    by_person: dict[int, list[str]] = {}
    for customer_id, (index, _) in zip(ids, records, strict=True):
        by_person.setdefault(index, []).append(customer_id)
    truth = {
        (min(a, b), max(a, b))
        for members in by_person.values()
        for i, a in enumerate(members)
        for b in members[i + 1 :]
    }
    table = pa.table(
        {
            "customer_id": ids,
            "first_name": [_styled(p.first, rng) for _, p in records],
            "last_name": [_styled(p.last, rng) for _, p in records],
            "email": [p.email for _, p in records],
            "phone": [p.phone for _, p in records],
        },
        schema=pa.schema([(c, pa.string()) for c in INPUT_COLUMNS]),
    )
    return table.sort_by("customer_id"), truth


def evaluate(
    suggestions: pa.Table, truth: set[tuple[str, str]], threshold: float
) -> dict[str, float | int]:
    """How good ``suggestions`` (suggest_matches's output) are against the true pairs.

    precision_at_threshold: share of suggestions with probability >= ``threshold`` that are true
    pairs (1.0 when there are none); recall_at_threshold: share of true pairs among them;
    recall_suggested: share of true pairs suggested at all. Counts come with them.
    """
    ids_l = suggestions.column("customer_id_l").to_pylist()
    ids_r = suggestions.column("customer_id_r").to_pylist()
    probabilities = suggestions.column("match_probability").to_pylist()
    suggested = {(min(a, b), max(a, b)) for a, b in zip(ids_l, ids_r, strict=True)}
    above = {
        (min(a, b), max(a, b))
        for a, b, p in zip(ids_l, ids_r, probabilities, strict=True)
        if p >= threshold
    }
    true_above = len(above & truth)
    true_suggested = len(suggested & truth)
    return {
        "threshold": threshold,
        "true_pairs": len(truth),
        "suggested": len(suggested),
        "suggested_true": true_suggested,
        "above_threshold": len(above),
        "above_threshold_true": true_above,
        "precision_at_threshold": true_above / len(above) if above else 1.0,
        "recall_at_threshold": true_above / len(truth) if truth else 1.0,
        "recall_suggested": true_suggested / len(truth) if truth else 1.0,
    }
