"""The ``csvboard`` command line: one module per command group.

``--json`` prints exactly one JSON document on stdout; logs and progress go to stderr. The
commands and their options are a documented interface (README, "Command line").
"""

from __future__ import annotations

from csvboard.cli import serve as _serve  # noqa: F401  (registers demo, serve, worker, scheduler)
from csvboard.cli._common import app
from csvboard.cli.alerts import alerts_app
from csvboard.cli.dashboards import dashboards_app
from csvboard.cli.db import db_app
from csvboard.cli.maintenance import maintenance_app
from csvboard.cli.runs import runs_app
from csvboard.cli.schedule import schedule_app
from csvboard.cli.tokens import tokens_app

app.add_typer(alerts_app, name="alerts")
app.add_typer(db_app, name="db")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(maintenance_app, name="maintenance")
app.add_typer(runs_app, name="runs")
app.add_typer(schedule_app, name="schedule")
app.add_typer(tokens_app, name="tokens")


def main() -> None:
    app()


__all__ = ["app", "main"]
