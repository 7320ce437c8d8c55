"""Load a Python v2-model Functions app and index its functions, the way the Python worker does.

The app folder goes on `sys.path`, `function_app.py` is imported, the one `FunctionRegister` at module top
level is found and `get_functions()` is called exactly once. Durable names follow the extension: orchestrator
and activity names match case-insensitively, entity names are lower-cased.

Only language workers (`devhost.worker`) import the app. They send the host its index as metadata
(`AppIndex.to_dict`), as the real Python worker reports its functions to the Functions host; the host never
holds a user callable.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func

from devhost.workerrules import WorkerIndexingError, check_function

log = logging.getLogger("devhost")
DEFAULT_FUNCTION_TIMEOUT = 300.0  # the Consumption plan's default functionTimeout
TIME_SPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")  # .NET TimeSpan, [d.]hh:mm:ss


class AppLoadError(RuntimeError):
    """The app cannot be loaded; the message says why (with the traceback for import errors)."""


@dataclass
class FunctionInfo:
    name: str
    kind: str  # http | timer | orchestrator | activity | entity
    trigger_param: str
    client_param: str | None
    takes_context: bool
    is_async: bool
    route: str | None = None
    methods: tuple[str, ...] = ()
    auth_level: str = "ANONYMOUS"
    schedule: str | None = None
    run_on_startup: bool = False
    durable_name: str | None = None


@dataclass
class AppIndex:
    functions: list[FunctionInfo] = field(default_factory=list)
    orchestrators: dict[str, FunctionInfo] = field(default_factory=dict)
    activities: dict[str, FunctionInfo] = field(default_factory=dict)
    entities: dict[str, FunctionInfo] = field(default_factory=dict)
    route_prefix: str = "api"
    hub_name: str = "TestHubName"
    function_timeout: float | None = DEFAULT_FUNCTION_TIMEOUT  # seconds; None: unlimited
    functions_by_name: dict[str, FunctionInfo] = field(default_factory=dict)
    callables: dict[str, Callable[..., Any]] = field(default_factory=dict)  # by function name; workers only

    def add(self, info: FunctionInfo) -> None:
        self.functions.append(info)
        self.functions_by_name[info.name] = info
        if info.kind == "orchestrator":
            self.orchestrators[str(info.durable_name).lower()] = info
        elif info.kind == "activity":
            self.activities[str(info.durable_name).lower()] = info
        elif info.kind == "entity":
            self.entities[str(info.durable_name).lower()] = info

    def to_dict(self) -> dict[str, Any]:
        """The metadata the host needs (no callables), as JSON."""
        return {
            "routePrefix": self.route_prefix,
            "hubName": self.hub_name,
            "functionTimeout": self.function_timeout,
            "functions": [{**info.__dict__, "methods": list(info.methods)} for info in self.functions],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppIndex:
        index = cls(
            route_prefix=data["routePrefix"], hub_name=data["hubName"], function_timeout=data["functionTimeout"]
        )
        for item in data["functions"]:
            index.add(FunctionInfo(**{**item, "methods": tuple(item["methods"])}))
        return index


def load_settings(path: Path) -> dict[str, str]:
    """`Values` of a local.settings.json file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise AppLoadError(f"cannot read settings file {path}: {error}") from None
    values = data.get("Values", {}) if isinstance(data, dict) else {}
    return {str(k): "" if v is None else str(v) for k, v in values.items()}


def apply_settings(values: Mapping[str, str]) -> None:
    # Like Core Tools: an app setting does not override a variable already set in the process environment.
    for name, value in values.items():
        os.environ.setdefault(name, value)


def _host_json(app_dir: Path) -> dict[str, Any]:
    path = app_dir / "host.json"
    if not path.exists():
        return {}
    text = path.read_text()
    try:
        data, end = json.JSONDecoder().raw_decode(text.lstrip())
    except ValueError as error:
        raise AppLoadError(f"host.json is not valid JSON: {error}") from None
    if text.lstrip()[end:].strip():
        # Some published samples ship two concatenated objects; use the first, as a lenient reader would.
        log.warning("host.json has extra content after its first JSON object; ignoring it")
    if not isinstance(data, dict):
        raise AppLoadError("host.json must hold a JSON object")
    return data


def function_timeout(value: Any) -> float | None:
    """host.json `functionTimeout` (`[d.]hh:mm:ss`, or -1 for none) in seconds.

    Left out, the host applies its plan's default; devhost applies the Consumption plan's 5 minutes, the
    strictest, so set it explicitly.
    """
    if value is None:
        return DEFAULT_FUNCTION_TIMEOUT
    text = str(value).strip()
    if text == "-1":
        return None
    match = TIME_SPAN.match(text)
    total = 0.0
    if match is not None:
        days, hours, minutes, seconds = match.groups()
        total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if total <= 0:
        raise AppLoadError(
            f"host.json functionTimeout must be a positive time span such as 00:10:00 (or -1), not {text!r}"
        )
    return total


def _resolve_setting_reference(value: str) -> str:
    # Binding properties may name an app setting as %NAME%, resolved from the environment.
    if value.startswith("%") and value.endswith("%") and len(value) > 2:
        name = value[1:-1]
        if name not in os.environ:
            raise AppLoadError(f"the app setting {name} (referenced as {value}) is not set")
        return os.environ[name]
    return value


def load_app(app_dir: Path) -> AppIndex:
    script = os.environ.get("PYTHON_SCRIPT_FILE_NAME", "function_app.py")
    if not (app_dir / script).exists():
        raise AppLoadError(f"{app_dir / script} does not exist; point --app at a folder with a {script}")
    host = _host_json(app_dir)
    extensions = host.get("extensions", {})
    index = AppIndex(
        route_prefix=str(extensions.get("http", {}).get("routePrefix", "api")).strip("/"),
        hub_name=str(extensions.get("durableTask", {}).get("hubName", "TestHubName")),
        function_timeout=function_timeout(host.get("functionTimeout")),
    )
    sys.path.insert(0, str(app_dir))
    module_name = script.removesuffix(".py")
    try:
        module = importlib.import_module(module_name)
    except Exception:
        raise AppLoadError(f"importing {script} failed:\n{traceback.format_exc()}") from None
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(apps) != 1:
        found = "no" if not apps else "more than one"
        raise AppLoadError(f"{script} defines {found} top-level function app (FunctionApp/DFApp) instance")
    try:
        functions = apps[0].get_functions()
    except ValueError as error:
        raise AppLoadError(f"indexing the app failed: {error}") from None
    names: set[str] = set()
    for function in functions:
        try:
            check_function(function)
        except WorkerIndexingError as error:
            # Azure's worker stops at the first function it refuses and the host then runs none of them.
            raise AppLoadError(
                f"the Python worker refuses function '{error.function_name}', so Azure indexes none of this app's "
                f'functions (the host logs "Worker failed to index functions", then "0 functions found"): '
                f"{error.worker_message}. To fix: {error.how_to_fix}"
            ) from None
        info = _describe(function)
        if info.name.lower() in names:
            raise AppLoadError(f"two functions are named '{info.name}'; function names must be unique")
        names.add(info.name.lower())
        index.add(info)
        index.callables[info.name] = function.get_user_function()
    return index


def _describe(function: Any) -> FunctionInfo:
    trigger = function.get_trigger()
    bindings = function.get_bindings()
    client = next((b.name for b in bindings if b.type == "durableClient"), None)
    user = function.get_user_function()
    binding_names = {b.name for b in bindings}
    try:
        parameters = inspect.signature(user).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    takes_context = "context" in parameters and "context" not in binding_names
    info = FunctionInfo(
        name=function.get_function_name(),
        kind="other",
        trigger_param=trigger.name,
        client_param=client,
        takes_context=takes_context,
        is_async=inspect.iscoroutinefunction(user),
    )
    kind = trigger.type
    if kind == "httpTrigger":
        info.kind = "http"
        info.route = getattr(trigger, "route", None) or info.name
        methods = getattr(trigger, "methods", None)
        info.methods = tuple(str(getattr(m, "value", m)).upper() for m in methods) if methods else ()
        info.auth_level = str(getattr(getattr(trigger, "auth_level", None), "value", "ANONYMOUS") or "ANONYMOUS")
    elif kind == "timerTrigger":
        info.kind = "timer"
        info.schedule = _resolve_setting_reference(str(trigger.schedule))
        info.run_on_startup = bool(getattr(trigger, "run_on_startup", False))
    elif kind == "orchestrationTrigger":
        info.kind = "orchestrator"
        info.durable_name = getattr(trigger, "orchestration", None) or info.name
    elif kind == "activityTrigger":
        info.kind = "activity"
        info.durable_name = getattr(trigger, "activity", None) or info.name
    elif kind == "entityTrigger":
        info.kind = "entity"
        info.durable_name = (getattr(trigger, "entity_name", None) or info.name).lower()
    else:
        info.kind = kind
    return info
