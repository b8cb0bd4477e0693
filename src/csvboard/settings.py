"""Process settings, read from the environment (12-factor; no config file to lose).

Every field is ``CSVBOARD_<NAME>`` in the environment; README's configuration table lists
them with their defaults (``tests/test_settings.py`` compares the two).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///csvboard.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CSVBOARD_", frozen=True, extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    data_dir: Path = Path("csvboard-data")
    timezone: ZoneInfo = ZoneInfo("Asia/Tokyo")
    run_timeout_seconds: int = Field(3600, gt=0)
    max_upload_bytes: int = Field(200 * 1024 * 1024, gt=0)
    heartbeat_seconds: float = Field(5.0, gt=0)
    # A running run whose lease has not been renewed for this long is failed WORKER_LOST.
    lease_timeout_seconds: float = Field(60.0, gt=0)
    # How often an idle worker looks for queued runs (a run started over HTTP wakes the
    # in-process worker at once), and how often it reaps runs whose lease has expired.
    worker_poll_seconds: float = Field(1.0, gt=0)
    reaper_interval_seconds: float = Field(15.0, gt=0)
    # SQLite only: how long a write waits for the write lock before failing. Long enough to
    # outlast the largest merge, so a kiosk write waits for it rather than failing.
    sqlite_busy_timeout_seconds: float = Field(120.0, gt=0)
    # SQLite only: a run's connection's page cache while it runs (the default is 2 MiB). The
    # apply inserts into indexes in random key order and thrashes a small cache; 48 MiB kept
    # a 3M-row first ingest at 159 s and 282 MB peak, 24 MiB cost 20% (docs/benchmarks.md).
    sqlite_run_cache_mib: int = Field(48, gt=0)
    # Lines a run reads, validates and stages per block: between two blocks it publishes its
    # counts, renews its lease and looks for a cancel. Larger blocks cost the columnar reader
    # a little less per line (1M rows: 5.1 s at 5,000 lines, 4.7 s at 20,000) but a
    # 20,000-line block holds about 60 MB more while staged (SQLite, 1M rows: 258 against
    # 195 MB resident), and the embedded case runs on a Raspberry Pi.
    ingest_batch_rows: int = Field(5000, gt=0)
    # The scheduler: how often it ticks; how long a dropped file must rest before it is taken
    # (it may be half-written); after how long a claimed file whose run never committed goes
    # back to its folder; how long a URL feed's download may take in all.
    scheduler_poll_seconds: float = Field(5.0, gt=0)
    folder_settle_seconds: float = Field(2.0, ge=0)
    folder_orphan_seconds: float = Field(600.0, gt=0)
    url_download_timeout_seconds: float = Field(600.0, gt=0)
    # Automatic re-runs of scheduled runs that failed for a reason that may pass (a lost or
    # stopped worker, the database, a time-out): minutes after the failure of the first,
    # second and third re-run, comma-separated; empty: never (csvboard/runs/retry_policy.py).
    auto_retry_minutes: str = Field(
        "1,5,15", pattern=r"^\s*(\d+(\.\d+)?\s*(,\s*\d+(\.\d+)?\s*)*)?$"
    )

    # Retention (csvboard/runs/retention.py): stored copies of files of ended runs, the items
    # and events of ended runs, and rows retired, older than these days are removed by the
    # scheduler's nightly prune (at prune_hour, local time) and by `csvboard maintenance prune`.
    retention_file_days: int = Field(90, gt=0)
    retention_ledger_days: int = Field(400, gt=0)
    retention_retired_row_days: int = Field(365, gt=0)
    prune_hour: int = Field(3, ge=0, le=23)
    # Alerts (csvboard/alerts): a message to a webhook and/or by mail when a problem opens, and
    # when it clears. Secrets (the webhook's URL, the SMTP password) come from the environment
    # or from a file (the *_FILE settings, read at each send so a rotated secret is used at
    # once), never from the database.
    alert_webhook_url: SecretStr | None = None
    alert_webhook_url_file: Path | None = None
    alert_smtp_host: str | None = None
    alert_smtp_port: int = Field(587, gt=0, lt=65536)
    alert_smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    alert_smtp_user: str | None = None
    alert_smtp_password: SecretStr | None = None
    alert_smtp_password_file: Path | None = None
    alert_mail_from: str = "csvboard@localhost"
    alert_mail_to: str = ""
    # How long one message may take to send (a webhook that hangs, a slow mail server).
    alert_timeout_seconds: float = Field(10.0, gt=0)
    # How often the scheduler looks for problems; how long a scheduled feed's slot has to
    # bring a successful run before the feed is overdue (its re-runs fit in the default).
    alert_check_seconds: float = Field(60.0, gt=0)
    alert_feed_grace_minutes: float = Field(60.0, gt=0)
    # csvboard's address as its admins reach it, for links in the messages.
    public_url: str | None = None

    @model_validator(mode="after")
    def _one_source_per_secret(self) -> Settings:
        if self.alert_webhook_url is not None and self.alert_webhook_url_file is not None:
            raise ValueError("set alert_webhook_url or alert_webhook_url_file, not both")
        if self.alert_smtp_password is not None and self.alert_smtp_password_file is not None:
            raise ValueError("set alert_smtp_password or alert_smtp_password_file, not both")
        if self.alert_smtp_host is not None and not self.alert_mail_recipients:
            raise ValueError("alert_smtp_host is set: alert_mail_to must name a recipient")
        return self

    @property
    def alert_mail_recipients(self) -> list[str]:
        return [a.strip() for a in self.alert_mail_to.split(",") if a.strip()]

    @property
    def auto_retry_delays(self) -> list[timedelta]:
        """``auto_retry_minutes`` as delays, at most three (the contract's re-run limit)."""
        parts = [p for p in self.auto_retry_minutes.split(",") if p.strip()]
        return [timedelta(minutes=float(p)) for p in parts][:3]

    @classmethod
    def from_env(cls) -> Settings:
        return cls()
