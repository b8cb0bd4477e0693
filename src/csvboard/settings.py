"""Process settings, read from the environment (12-factor; no config file to lose).

Every field is ``CSVBOARD_<NAME>`` in the environment; README's configuration table lists
them with their defaults (``tests/test_settings.py`` compares the two).
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field
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

    @classmethod
    def from_env(cls) -> Settings:
        return cls()
