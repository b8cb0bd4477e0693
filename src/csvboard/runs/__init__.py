"""The run ledger (docs/contract.md §2.1, §2.3): ``models``, ``vocabulary``, ``lifecycle``
(every status change), ``service`` (creating and re-running runs), ``queries`` (reading the
ledger) and ``api`` (the routes).
"""
