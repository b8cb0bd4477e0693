"""The production schedule: what people enter beside each ingested step, and the kiosk's view
of it (docs/contract.md §2.2, §6).

What other packages use: ``models`` (the operator-owned and source-owned tables), ``queries``
(the composed list and one row), ``progress`` (the summary), ``commands`` (the operator
writes), ``board`` and ``seibans`` (what a scoped kiosk reads, the registered 製番) and
``sample`` (the demo and benchmark export). HTTP: ``api`` with its ``schemas``.

Private to the package: ``expressions`` (the CSV values as SQL on both engines),
``composed`` (a row with its operator data), ``search`` (search tokens) and ``access``
(which schedule and row a request may touch); an import-linter contract keeps them so.
"""
