"""Personal data is tagged in YAML: every column whose name looks personal carries
``meta: {pii: true}``, and every tagged column is one the model's SQL really outputs.

No warehouse: the YAML files are read as they are, and each model's output columns are read from
its SQL text (the select list of its final CTE, following ``select *`` through CTEs, refs and
sources). Where Jinja writes the select list (a macro, a loop) the output cannot be read that
way; a tagged column must then at least be named in the model's SQL or a macro it calls.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from orchestration.privacy import declared_columns, looks_personal, pii_columns

pytestmark = pytest.mark.unit

PROJECT = Path(__file__).resolve().parents[2]


def untagged_personal_columns(project: Path) -> list[str]:
    """``file: model m column c`` for each declared column that looks personal, untagged."""
    return [
        f"{declared.path.relative_to(project)}: {declared.kind} {declared.relation} column "
        f"{declared.column} looks personal but is not tagged meta.pii: true"
        for declared in declared_columns(project)
        if looks_personal(declared.column) and not declared.pii and not declared.not_pii
    ]


def tagged_columns_not_in_output(project: Path) -> list[str]:
    """``model m column c`` for each tagged column its model's SQL does not output."""
    sql = ModelSql(project)
    problems = []
    for model, columns in sorted(pii_columns(project).items()):
        if model not in sql.files:
            problems.append(f"model {model}: tagged in YAML, but there is no {model}.sql")
            continue
        output = sql.output(model)
        for column in sorted(columns):
            if output.complete and column not in output.columns:
                problems.append(
                    f"model {model} column {column}: tagged pii, not in the model's output "
                    f"({', '.join(sorted(output.columns))})"
                )
            elif not output.complete and not sql.mentions(model, column):
                problems.append(
                    f"model {model} column {column}: tagged pii, never named in its SQL"
                )
    return problems


def undeclared_personal_outputs(project: Path) -> list[str]:
    """``model m column c`` for each output column that looks personal and is not tagged,
    declared in YAML or not (a model whose YAML lists only some of its columns)."""
    tagged = pii_columns(project)
    sql = ModelSql(project)
    return [
        f"model {model} column {column}: output column looks personal but is not tagged "
        "meta.pii: true in its YAML"
        for model in sorted(sql.files)
        for column in sorted(sql.output(model).columns)
        if looks_personal(column) and column not in tagged.get(model, set())
    ]


def test_every_declared_column_that_looks_personal_is_tagged_pii():
    assert untagged_personal_columns(PROJECT) == []


def test_every_tagged_column_is_in_its_models_sql_output():
    assert tagged_columns_not_in_output(PROJECT) == []


def test_every_output_column_that_looks_personal_is_declared_and_tagged():
    assert undeclared_personal_outputs(PROJECT) == []


def test_pii_columns_reads_the_tags_of_every_layer_and_leaves_customer_ids_out():
    tagged = pii_columns(PROJECT)

    assert tagged["customers"] == {"email", "phone", "first_name", "last_name"}
    assert tagged["audience_repeat_buyers"] == {"email", "phone", "first_name", "last_name"}
    assert tagged["identity_edges"] == {"identifier_value_a", "identifier_value_b"}
    assert tagged["stg_support__tickets"] == {"requester_email"}
    assert tagged["base_crm__contacts"] == {
        "email_raw",
        "email",
        "phone_raw",
        "phone",
        "first_name",
        "last_name",
    }
    assert not any("customer_id" in columns for columns in tagged.values())
    assert "customer_clv" not in tagged


def test_the_checks_name_the_model_and_column_of_an_untagged_email_and_a_stale_tag(tmp_path):
    # The checks above pass on the project; this shows that each can fail, and how it reads.
    (tmp_path / "dbt_project.yml").write_text("name: t\nmodel-paths: [models]\n")
    models = tmp_path / "models"
    models.mkdir()
    (models / "people.sql").write_text(
        textwrap.dedent("""\
            with
            source as (
                select * from {{ ref('upstream') }}
            ),
            final as (
                select
                    person_id,
                    lower(trim(contact)) as contact_email,
                    {{ tessera.normalize_phone('mobile') }} as phone
                from source
            )
            select * from final
            """)
    )
    (models / "people.yml").write_text(
        textwrap.dedent("""\
            version: 2
            models:
              - name: people
                columns:
                  - name: person_id
                  - name: contact_email
                  - name: first_name
                    meta: {pii: true}
            """)
    )

    assert untagged_personal_columns(tmp_path) == [
        "models/people.yml: model people column contact_email looks personal but is not "
        "tagged meta.pii: true"
    ]
    assert tagged_columns_not_in_output(tmp_path) == [
        "model people column first_name: tagged pii, not in the model's output "
        "(contact_email, person_id, phone)"
    ]
    assert undeclared_personal_outputs(tmp_path) == [
        "model people column contact_email: output column looks personal but is not tagged "
        "meta.pii: true in its YAML",
        "model people column phone: output column looks personal but is not tagged "
        "meta.pii: true in its YAML",
    ]


def test_names_that_look_personal_are_contact_fields_and_identifier_values_not_flags():
    personal = ["email", "requester_email", "email_raw", "phone", "FirstName", "last_name"]
    personal += ["name", "ip_address", "street_address", "zip", "identifier_value_a"]
    not_personal = ["customer_id", "user_id", "anonymous_id", "emails_count", "event_name"]
    not_personal += ["has_consent_email_marketing", "identifier_type", "company", "zipped"]

    assert [name for name in personal if not looks_personal(name)] == []
    assert [name for name in not_personal if looks_personal(name)] == []


@dataclass(frozen=True)
class Output:
    columns: frozenset[str]
    #: False when Jinja writes part of the select list, so columns may be missing.
    complete: bool


_COMMENTS = re.compile(r"\{#.*?#\}|--[^\n]*", re.DOTALL)
_STATEMENTS = re.compile(r"\{%.*?%\}", re.DOTALL)
_REF = re.compile(r"^\{\{\s*ref\(\s*'(\w+)'\s*\)\s*\}\}$")
_SOURCE = re.compile(r"^\{\{\s*(?:tessera\.)?(?:source|source_or_empty)\(\s*'(\w+)',\s*'(\w+)'")
_MATERIALIZED = re.compile(r"materialized\s*=\s*'(\w+)'")
_MACRO_CALL = re.compile(r"\btessera\.(\w+)\(")
_ALIAS = re.compile(r"\bas\s+(\w+)$", re.IGNORECASE)
_COLUMN = re.compile(r"(?:\w+\.)?(\w+)")
_STAR = re.compile(r"(?:(\w+)\.)?\*")
_RELATION = re.compile(r"(\{\{.*?\}\}|\w+)(?:\s+as)?(?:\s+(\w+))?", re.DOTALL)
_KEYWORDS = {"on", "where", "left", "inner", "right", "full", "cross", "group", "order", "having"}


class ModelSql:
    """The project's model SQL files, read as text, and the columns each one outputs."""

    def __init__(self, project: Path) -> None:
        self.files = {path.stem: path for path in (project / "models").rglob("*.sql")}
        self.macros = {path.stem: path for path in (project / "macros").rglob("*.sql")}
        self.sources: dict[str, set[str]] = {}
        for declared in declared_columns(project):
            if declared.kind == "source":
                self.sources.setdefault(declared.relation, set()).add(declared.column)
        self.output = cache(self._output)

    def mentions(self, model: str, column: str) -> bool:
        """Whether the model's SQL, or a macro it calls (directly or through other macros),
        names ``column``."""
        texts = [self.files[model].read_text()]
        seen: set[str] = set()
        for text in texts:
            for name in _MACRO_CALL.findall(text):
                if name in self.macros and name not in seen:
                    seen.add(name)
                    texts.append(self.macros[name].read_text())
        return any(re.search(rf"\b{re.escape(column)}\b", text) for text in texts)

    def _output(self, model: str) -> Output:
        text = _STATEMENTS.sub(" ", _COMMENTS.sub(" ", self.files[model].read_text()))
        materialized = _MATERIALIZED.search(text)
        if materialized and materialized[1] not in ("table", "view", "incremental", "ephemeral"):
            # A custom materialization (connected_components) writes its own columns.
            return Output(frozenset(), complete=False)
        ctes, main = _split_ctes(text)
        return self._select(main, ctes)

    def _select(self, body: str, ctes: dict[str, str]) -> Output:
        # A union's columns are its first branch's.
        body = _top_level_split(body, r"\bunion\b")[0]
        match = re.search(r"\bselect\b(?:\s+distinct\b)?", body, re.IGNORECASE)
        if match is None:
            return Output(frozenset(), complete=False)
        rest = body[match.end() :]
        parts = _top_level_split(rest, r"\bfrom\b", limit=1)
        if len(parts) < 2:
            return Output(frozenset(), complete=False)
        items, relations = _top_level_split(parts[0], ","), self._relations(parts[1])
        columns: set[str] = set()
        complete = True
        for item in (item.strip() for item in items):
            alias, column, star = (
                _ALIAS.search(item),
                _COLUMN.fullmatch(item),
                _STAR.fullmatch(item),
            )
            if star:
                chosen = [relations.get(star[1], "")] if star[1] else list(relations.values())
                for relation in chosen:
                    expanded = self._relation(relation, ctes)
                    columns |= expanded.columns
                    complete = complete and expanded.complete
            elif alias:
                columns.add(alias[1])
            elif column:
                columns.add(column[1])
            else:
                complete = False
        return Output(frozenset(columns), complete)

    def _relations(self, from_clause: str) -> dict[str, str]:
        """Alias (or name) -> relation text, for the relations a from clause reads."""
        relations = {}
        pieces = _top_level_split(from_clause, r"\bjoin\b")
        for piece in pieces:
            match = _RELATION.match(piece.strip())
            if match is None:
                continue
            name, alias = match[1], match[2]
            if alias and alias.lower() in _KEYWORDS:
                alias = None
            relations[alias or name] = name
        return relations

    def _relation(self, relation: str, ctes: dict[str, str]) -> Output:
        if relation in ctes:
            return self._select(ctes[relation], ctes)
        if ref := _REF.match(relation):
            if ref[1] in self.files:
                return self.output(ref[1])
        if source := _SOURCE.match(relation):
            columns = self.sources.get(f"{source[1]}.{source[2]}")
            if columns:
                return Output(frozenset(columns), complete=True)
        return Output(frozenset(), complete=False)


def _split_ctes(text: str) -> tuple[dict[str, str], str]:
    """CTE name -> body, and the statement after the last CTE."""
    ctes: dict[str, str] = {}
    start = re.search(r"\bwith\b", text, re.IGNORECASE)
    if start is None:
        return ctes, text
    position = start.end()
    # `name as (`, or `name as{{ tessera.materialized_cte(...) }} (`.
    cte = re.compile(r"\s*,?\s*(\w+)\s+as\s*(?:\{\{.*?\}\}\s*)?\(", re.IGNORECASE)
    if not cte.match(text, position):
        return ctes, text
    while match := cte.match(text, position):
        end = _closing(text, match.end() - 1)
        ctes[match[1]] = text[match.end() : end]
        position = end + 1
    return ctes, text[position:]


def _closing(text: str, opening: int) -> int:
    depth = 0
    for index in range(opening, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError(f"unbalanced parentheses from {text[opening : opening + 40]!r}")


def _top_level_split(text: str, separator: str, limit: int = 0) -> list[str]:
    """``text`` split at ``separator`` (a regex) outside parentheses, braces and quotes."""
    parts, depth, quote, start, index = [], 0, None, 0, 0
    pattern = re.compile(separator, re.IGNORECASE)
    while index < len(text):
        char = text[index]
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
        elif depth == 0 and (not limit or len(parts) < limit):
            # A leading \b in ``separator`` sees the character before ``index`` too.
            match = pattern.match(text, index)
            if match:
                parts.append(text[start:index])
                start = index = match.end()
                continue
        index += 1
    parts.append(text[start:])
    return parts
