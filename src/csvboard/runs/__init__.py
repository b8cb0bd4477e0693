"""The run ledger (docs/contract.md §2.1, §2.3; docs/design/ingestion_runs_table.md).

What other packages use: ``models`` and ``vocabulary`` (the tables and their closed
vocabularies), ``lifecycle`` (every status change goes through it), ``service`` (creating
and re-running runs), ``queries`` (reading the ledger), ``health`` and ``latest`` (what the
health endpoint and the overview report). HTTP: ``api`` (reading, re-running, cancelling),
``start_api`` (starting a run) and their ``schemas``.
"""
