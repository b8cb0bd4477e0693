"""Alerts: problems csvboard notices (failed runs, exhausted re-runs, overdue feeds, silent
workers) told to its admins by webhook and mail, once until they clear.

Other packages use :func:`evaluate` (the scheduler), :func:`send_test` and
:func:`recent_alerts` (the CLI), ``schemas`` (an alert's shape, for the API and the CLI's
``--json``) and ``csvboard.alerts.api`` (the app); the models are
registered in ``csvboard.db.models``. ``problems`` and ``channels`` are internal.
"""

from csvboard.alerts.service import AlertReport, evaluate, recent_alerts, send_test

__all__ = ["AlertReport", "evaluate", "recent_alerts", "send_test"]
