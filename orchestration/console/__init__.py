"""The console: web pages for the people who use the customer data (``tessera console``).

- ``reader.py``: what the console reads and how it never blocks a build: a snapshot of the
  DuckDB warehouse that each build refreshes, or a SELECT-only role on Postgres.
- ``access.py``: users and roles, Argon2 password hashes, masking for viewers, the access log.
- ``pages.py``: the questions the pages answer (profile, audience preview, sync health), as SQL.
- ``charts.py``: the inline SVG charts of those pages.
- ``app.py``: the Starlette application, its sign-in, CSRF checks and templates.
- ``assets.py``: the Dagster asset that refreshes the snapshot at the end of a build.
"""
