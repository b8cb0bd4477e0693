"""The database: ``engine`` (engines and sessions for SQLite and PostgreSQL), ``base`` (the
declarative base and column types), ``upsert`` (INSERT … ON CONFLICT for either dialect),
``cursor`` (the keyset-cursor codec every paged list uses), ``models`` (every table, for
Alembic), ``migrate`` and ``migrations``.
"""
