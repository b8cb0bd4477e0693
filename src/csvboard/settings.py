"""Process settings, read from the environment (12-factor; no config file to lose)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

DEFAULT_DATABASE_URL = "sqlite:///csvboard.db"


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    timezone: ZoneInfo
    run_timeout_seconds: int
    max_upload_bytes: int = 200 * 1024 * 1024
    heartbeat_seconds: float = 5.0
    # A running run whose lease has not been renewed for this long is failed WORKER_LOST.
    lease_timeout_seconds: float = 60.0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("CSVBOARD_DATABASE_URL", DEFAULT_DATABASE_URL),
            data_dir=Path(os.environ.get("CSVBOARD_DATA_DIR", "csvboard-data")),
            timezone=ZoneInfo(os.environ.get("CSVBOARD_TIMEZONE", "Asia/Tokyo")),
            run_timeout_seconds=int(os.environ.get("CSVBOARD_RUN_TIMEOUT_SECONDS", "3600")),
            max_upload_bytes=int(os.environ.get("CSVBOARD_MAX_UPLOAD_BYTES", str(200 << 20))),
            heartbeat_seconds=float(os.environ.get("CSVBOARD_HEARTBEAT_SECONDS", "5")),
            lease_timeout_seconds=float(os.environ.get("CSVBOARD_LEASE_TIMEOUT_SECONDS", "60")),
        )
