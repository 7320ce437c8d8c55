"""HTTP triggers: the public JSON API. Each module registers its routes on `bp`."""

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)

from api import callbacks, files, health, jobs, openapi, schedules, tenants, ui, views  # noqa: E402  (each registers routes on bp)

__all__ = ["bp", "callbacks", "files", "health", "jobs", "openapi", "schedules", "tenants", "ui", "views"]
