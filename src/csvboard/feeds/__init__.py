"""Feeds: where a dashboard's files come from, the rules their settings obey, their state,
and the runs they start (docs/contract.md §4).

What other packages use: ``service`` (the feed rules; list, create, update), ``models`` (the
feed-state and mail tables), ``start`` (starting a run on request: the API and the CLI),
``runs`` (queueing a feed's run), ``health`` (failing feeds), and the sources the scheduler
(``worker/scheduler.py``) dispatches to: folder (``folder``, ``folder_runs``), URL (``url``)
and mail (``mail``), with what it records per feed (``state``). ``cron`` and
``imap_options`` check a feed's settings.

Private to the package: ``imap`` (the IMAP client) and ``mail_claims`` (the mail poller's
claim rows); an import-linter contract keeps them so.
"""
