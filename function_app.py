"""Azure Functions entry point: composes the app from its blueprints and nothing else.

HTTP auth is ANONYMOUS at the Functions level because the API authenticates every request itself
(admin key, tenant keys, per-task callback tokens); Functions keys would add a second, unrelated secret.
"""

import azure.durable_functions as df
import azure.functions as func

import activities
import api
import entities
import orchestrators

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
for blueprint in (api.bp, orchestrators.bp, activities.bp, entities.bp):
    app.register_functions(blueprint)
