"""Settings: README's configuration table lists every setting with its real default, and the
environment sets each one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr, ValidationError

from csvboard.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
_ROW = re.compile(r"^\| `(CSVBOARD_[A-Z_]+)` \| `([^`]*)`")


def readme_table() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return {m[1]: m[2] for line in section.splitlines() if (m := _ROW.match(line))}


def _as_field(name: str, raw: str) -> Any:
    field = Settings.model_fields[name]
    default = field.default
    if default is None:  # README writes an unset optional as `(unset)`
        if raw == "(unset)":
            return None
        kinds = getattr(field.annotation, "__args__", ())
        return SecretStr(raw) if SecretStr in kinds else Path(raw) if Path in kinds else raw
    if isinstance(default, Path):
        return Path(raw)
    if isinstance(default, ZoneInfo):
        return ZoneInfo(raw)
    return type(default)(raw)


def test_readme_lists_every_setting_with_its_default() -> None:
    table = readme_table()
    fields = {f"CSVBOARD_{name.upper()}": name for name in Settings.model_fields}
    assert set(table) == set(fields)
    for variable, name in fields.items():
        assert _as_field(name, table[variable]) == Settings.model_fields[name].default, variable


def test_the_environment_sets_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    values: dict[str, str | None] = {
        "database_url": "postgresql+psycopg://u@127.0.0.1/db",
        "data_dir": "/srv/csvboard",
        "timezone": "UTC",
        "run_timeout_seconds": "120",
        "max_upload_bytes": "1000",
        "heartbeat_seconds": "0.5",
        "lease_timeout_seconds": "9",
        "worker_poll_seconds": "0.25",
        "reaper_interval_seconds": "3",
        "sqlite_busy_timeout_seconds": "30",
        "sqlite_run_cache_mib": "24",
        "ingest_batch_rows": "20000",
        "scheduler_poll_seconds": "2.5",
        "folder_settle_seconds": "0",
        "folder_orphan_seconds": "60",
        "url_download_timeout_seconds": "90",
        "auto_retry_minutes": "2,10",
        "retention_file_days": "30",
        "retention_ledger_days": "180",
        "retention_retired_row_days": "90",
        "prune_hour": "4",
        "alert_webhook_url": "https://hooks.example/T0/secret",
        "alert_webhook_url_file": None,  # one source per secret: the URL is set above
        "alert_smtp_host": "mail.factory.example",
        "alert_smtp_port": "465",
        "alert_smtp_security": "tls",
        "alert_smtp_user": "csvboard",
        "alert_smtp_password": None,  # read from the file below
        "alert_smtp_password_file": "/run/secrets/smtp",
        "alert_mail_from": "csvboard@factory.example",
        "alert_mail_to": "admin@factory.example, planner@factory.example",
        "alert_timeout_seconds": "3",
        "alert_check_seconds": "30",
        "alert_feed_grace_minutes": "90",
        "public_url": "http://csvboard.local:8000",
    }
    assert set(values) == set(Settings.model_fields)
    for name, raw in values.items():
        if raw is None:
            monkeypatch.delenv(f"CSVBOARD_{name.upper()}", raising=False)
        else:
            monkeypatch.setenv(f"CSVBOARD_{name.upper()}", raw)
    settings = Settings.from_env()
    for name, raw in values.items():
        expected = None if raw is None else _as_field(name, raw)
        assert getattr(settings, name) == expected, name


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CSVBOARD_RUN_TIMEOUT_SECONDS", "0"),
        ("CSVBOARD_MAX_UPLOAD_BYTES", "lots"),
        ("CSVBOARD_HEARTBEAT_SECONDS", "-1"),
        ("CSVBOARD_TIMEZONE", "Mars/Olympus"),
    ],
)
def test_a_bad_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings.from_env()
    assert variable.removeprefix("CSVBOARD_").lower() in str(caught.value)
