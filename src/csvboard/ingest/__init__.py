"""The ingestion engine: a run's files into its dashboard (docs/contract.md §3). No HTTP.

In pipeline order: ``decode`` (the encoding) → ``parse`` (records, the header) and
``blocks`` (the lines Arrow reads) → ``validate`` and ``checks`` (rows, one column's checks)
or ``batches`` and ``columnar`` (the same rules column by column) → ``stage`` (the staging
tables, the in-file duplicate fold) → ``merge`` (the set-based statements) under ``apply``
(the per-dashboard lock, the rows marker, planner statistics). ``runner`` executes a run;
``ledger`` is what that writes to the ledger.

What the rest of csvboard uses: ``runner.execute_run``, ``ledger.begin_execution`` and
``ledger.RunOutcome`` (the worker, the CLI), ``errors.RunError`` (HTTP problems, the CLI);
``failpoints`` is for the crash tests. The other modules are private to the package; an
import-linter contract keeps them so.
"""
