"""HTTP triggers: the public JSON API. Each module registers its routes on `bp`."""

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)

from api import health  # noqa: E402  (registers routes on bp)

__all__ = ["bp", "health"]
