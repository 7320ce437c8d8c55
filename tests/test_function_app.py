"""The deployed app indexes the way the Functions Python worker indexes it."""

import azure.functions as func


def test_app_indexes_once_with_health_route() -> None:
    import function_app

    functions = function_app.app.get_functions()
    names = {f.get_function_name() for f in functions}
    assert "health" in names
    health = next(f for f in functions if f.get_function_name() == "health")
    assert health.is_http_function()
    trigger = health.get_trigger()
    assert trigger.route == "health"
    assert trigger.auth_level == func.AuthLevel.ANONYMOUS
