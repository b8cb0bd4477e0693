"""``csvboard alerts``: what csvboard has told its admins, a check now, and a test message
(docs/contract.md §4, "Alerts"; csvboard/alerts)."""

from __future__ import annotations

from typing import Annotated

import typer

from csvboard.cli._common import JsonFlag, _engine, _print_json, _settings, out

alerts_app = typer.Typer(
    help="Problems told to the admins by webhook and mail.", no_args_is_help=True
)


@alerts_app.command("list")
def list_command(
    open_only: Annotated[
        bool, typer.Option("--open", help="Only problems that still hold.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """The latest alerts, newest first, with what was sent about each."""
    from csvboard.alerts import recent_alerts
    from csvboard.alerts.schemas import alert_out

    found = recent_alerts(_engine(_settings()), limit, open_only=open_only)
    if as_json:
        _print_json([alert_out(a, d).model_dump(mode="json") for a, d in found])
        return
    for alert, deliveries in found:
        state = "open" if alert.cleared_at is None else f"cleared {alert.cleared_at:%Y-%m-%d %H:%M}"
        sent = ", ".join(
            f"{d.channel}/{d.event}: "
            + ("sent" if d.sent_at else f"pending ({d.last_error or 'not yet'})")
            for d in deliveries
        )
        out.print(
            f"{alert.opened_at:%Y-%m-%d %H:%M}  {state:<22} {alert.summary}"
            f"  [{sent or 'no channel'}]",
            markup=False, soft_wrap=True,
        )  # fmt: skip


@alerts_app.command("check")
def check_command(as_json: JsonFlag = False) -> None:
    """Look for problems now and send what is due (the scheduler does it every
    CSVBOARD_ALERT_CHECK_SECONDS)."""
    from csvboard.alerts import evaluate
    from csvboard.clock import utcnow

    settings = _settings()
    report = evaluate(_engine(settings), settings, utcnow())
    if as_json:
        _print_json(report.as_dict())
        return
    out.print(
        f"opened {len(report.opened)}, cleared {len(report.cleared)}, sent {report.sent},"
        f" failed {len(report.failed)}"
    )
    for failure in report.failed:
        out.print(f"  failed: {failure}", markup=False, soft_wrap=True)


@alerts_app.command("test")
def test_command(as_json: JsonFlag = False) -> None:
    """Send a test message through every configured channel; exit 1 if one fails."""
    from csvboard.alerts import send_test
    from csvboard.clock import utcnow

    results = send_test(_settings(), utcnow())
    if as_json:
        _print_json(results)
    elif not results:
        out.print("no channel is configured (CSVBOARD_ALERT_WEBHOOK_URL, CSVBOARD_ALERT_SMTP_HOST)")
    for channel, error in results.items():
        if not as_json:
            out.print(f"{channel}: {'sent' if error is None else error}", markup=False)
    if not results or any(error is not None for error in results.values()):
        raise typer.Exit(1)
