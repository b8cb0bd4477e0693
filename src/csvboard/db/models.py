"""Import every domain's models so ``Base.metadata`` holds the whole schema (Alembic, tests)."""

from csvboard import auth as auth_models
from csvboard.alerts import models as alerts_models
from csvboard.dashboards import models as dashboards_models
from csvboard.db.base import Base
from csvboard.feeds import models as feeds_models
from csvboard.runs import models as runs_models
from csvboard.schedule import models as schedule_models

metadata = Base.metadata

__all__ = [
    "alerts_models",
    "auth_models",
    "dashboards_models",
    "feeds_models",
    "metadata",
    "runs_models",
    "schedule_models",
]
