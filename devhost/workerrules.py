"""The checks Azure's Python worker makes on each function when it indexes a v2 app.

Azure's Python worker (Azure/azure-functions-python-worker, `azure_functions_worker/functions.py`,
`Registry.add_indexed_function`, on the Python 3.11 worker of Functions host 4.x) reads every indexed function's
signature and type hints and checks them against its bindings before it reports any function to the host. The
first function it refuses fails the whole metadata request: the host logs "Worker failed to index functions" and
runs 0 functions. There is no per-function fallback, so one bad annotation takes the whole app down in Azure.

devhost runs the same checks, in the same order, with the same libraries the worker uses: `inspect.signature`,
`typing.get_type_hints` (so `from __future__ import annotations` strings are evaluated exactly as there) and the
binding converters of the `azure-functions` package (`azure.functions.get_binding_registry()`), so that an app
devhost indexes is one Azure indexes. Only the worker's own pieces are written out here: its generic binding
(`bindings/generic.py`), its `is_generic_type` test (the vendored `_thirdparty/typing_inspect.py`) and its messages.

The worker also ships `azurefunctions-extensions-base`, which first probes every annotation for "SDK types"
(`azurefunctions/extensions/base/meta.py`, `check_supported_type`); only the way that probe fails is reproduced.
Not modelled: the deferred (SDK type) bindings and the HTTP streaming extension themselves, which replace the
converter checks of the bindings they own; devhost runs neither.
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from typing import Any

import azure.functions as func
from azure.functions.decorators.core import Binding, BindingDirection, DataType
from azure.functions.decorators.function_app import Function

RETURN_BINDING = "$return"
# The one binding type whose generic fallback has no implicit output (bindings/generic.py has_implicit_output).
DURABLE_CLIENT = "durableClient"
# The worker's name for a binding with no converter in the registry (bindings/meta.py get_binding).
GENERIC = "generic"

# The typing internals the worker's vendored `typing_inspect.is_generic_type` tests against. `list[str]`
# (a `types.GenericAlias`, PEP 585) is neither, and on Python 3.11 it is no longer an instance of `type` either;
# that is why the worker refuses it while it accepts `typing.List[str]`.
_TYPING_ALIAS = typing._GenericAlias  # type: ignore[attr-defined]
_TYPING_SPECIAL_ALIAS = typing._SpecialGenericAlias  # type: ignore[attr-defined]
_NOT_GENERIC_ORIGINS = (typing.Union, tuple, typing.ClassVar, collections.abc.Callable)


class WorkerIndexingError(Exception):
    """The worker refuses a function; `worker_message` is what it reports to the host, word for word."""

    def __init__(self, function_name: str, worker_message: str) -> None:
        super().__init__(f"function '{function_name}': {worker_message}")
        self.function_name = function_name
        self.worker_message = worker_message

    @property
    def how_to_fix(self) -> str:
        """devhost's advice (the worker gives none)."""
        if self.worker_message.startswith("NameError"):
            return "import every name an annotation uses at run time, not only under TYPE_CHECKING"
        if "declared in" in self.worker_message or '"context" parameter' in self.worker_message:
            return "every parameter must be one of the function's bindings, or `context: func.Context`"
        return (
            "annotate each binding parameter with a plain class its binding accepts, or not at all (an activity's "
            "input: dict, list, str or object, then cast inside the function); an HTTP function returns "
            "func.HttpResponse or str"
        )


class _FunctionLoadError(Exception):
    """The worker's FunctionLoadError: its text names the function, and the host sees `FunctionLoadError: ...`."""

    def __init__(self, function_name: str, detail: str) -> None:
        super().__init__(f"cannot load the {function_name} function: {detail}")


def check_function(function: Function) -> None:
    """Raise WorkerIndexingError if the worker would refuse this function (and with it the whole app)."""
    name = str(function.get_function_name())
    try:
        _check(function, name)
    except _FunctionLoadError as error:
        raise WorkerIndexingError(name, f"FunctionLoadError: {error}") from None
    except Exception as error:
        # The worker does not catch what its own steps raise (NameError from get_type_hints for a name imported
        # only under TYPE_CHECKING, TypeError from a converter's issubclass on a typing alias): the host gets the
        # bare exception, serialised as "Type: message".
        raise WorkerIndexingError(name, f"{type(error).__name__}: {error}") from None


def is_generic_type(annotation: object) -> bool:
    """The worker's test (vendored typing_inspect, Python 3.9+ branch): a Generic class or a typing alias."""
    if isinstance(annotation, type) and issubclass(annotation, typing.Generic):
        return True
    if isinstance(annotation, (_TYPING_ALIAS, _TYPING_SPECIAL_ALIAS)):
        return annotation.__origin__ not in _NOT_GENERIC_ORIGINS
    return False


def generic_origin(annotation: object) -> Any:
    """The worker's `typing_inspect.get_origin`: the alias's origin (None for ClassVar), Generic, or None."""
    if isinstance(annotation, _TYPING_ALIAS):
        origin = annotation.__origin__
        return None if origin is typing.ClassVar else origin
    return typing.Generic if annotation is typing.Generic else None


def _converter(binding_type: str | None) -> Any:
    """The azure-functions converter the worker uses for this binding type, or None (its generic binding)."""
    return func.get_binding_registry().get(binding_type)  # type: ignore[no-untyped-call]


def has_implicit_output(binding_type: str | None) -> bool:
    """Whether the worker treats the function's return value as this binding's output (bindings/meta.py)."""
    converter = _converter(binding_type)
    if converter is None:
        return binding_type != DURABLE_CLIENT
    return bool(getattr(converter, "has_implicit_output", lambda: False)())


def check_input_type(binding_type: str | None, annotation: Any) -> bool:
    """The binding's converter accepts this input annotation (the generic binding takes str and bytes only)."""
    converter = _converter(binding_type)
    if converter is None:
        return issubclass(annotation, (str, bytes))
    return bool(converter.check_input_type_annotation(annotation))


def check_output_type(binding_type: str | None, annotation: Any) -> bool:
    """The binding's converter accepts this output annotation (the generic binding takes str, bytes, bytearray)."""
    converter = _converter(binding_type)
    if converter is None:
        return issubclass(annotation, (str, bytes, bytearray))
    return bool(converter.check_output_type_annotation(annotation))


def _check(function: Function, name: str) -> None:
    user = function.get_user_function()
    params = dict(inspect.signature(user).parameters)
    # Resolves string annotations (`from __future__ import annotations`) in the function's module, so a name
    # that exists only for type checkers fails here, as in the worker.
    hints = typing.get_type_hints(user)
    inspect.getfile(user)  # the worker records the function's folder; a callable without a file fails there

    explicit_return = False
    return_binding: str | None = None
    bound: dict[str, Binding] = {}
    for binding in function.get_bindings():
        _check_direction(binding, name)
        # The first $return binding is the return binding; until there is one, the latest binding with an
        # implicit output (a Durable trigger, say) holds that place. Every other binding is a parameter.
        if binding.name == RETURN_BINDING:
            if not explicit_return:
                return_binding, explicit_return = binding.type, True
            continue
        bound[binding.name] = binding
        if not explicit_return and has_implicit_output(binding.type):
            return_binding = binding.type

    _check_context(params, bound, hints, name)
    _check_parameters(params, bound, hints, name)
    if explicit_return and "return" in hints:
        _check_return(hints["return"], str(return_binding), name)


def _check_direction(binding: Binding, name: str) -> None:
    if binding.direction == BindingDirection.INOUT.value:
        raise _FunctionLoadError(name, '"inout" bindings are not supported')
    if binding.name == RETURN_BINDING and binding.direction != BindingDirection.OUT.value:
        raise _FunctionLoadError(name, '"$return" binding must have direction set to "out"')


def _check_context(
    params: dict[str, inspect.Parameter], bound: dict[str, Binding], hints: dict[str, Any], name: str
) -> None:
    """A parameter named `context` that is no binding gets the invocation context, and must be typed as one."""
    if "context" not in params or "context" in bound:
        return
    params.pop("context")
    if "context" in hints:
        annotation = hints["context"]
        if not isinstance(annotation, type) or annotation.__name__ != "Context":
            raise _FunctionLoadError(
                name, f'the "context" parameter is expected to be of type azure.functions.Context, got {annotation!r}'
            )


def _check_parameters(
    params: dict[str, inspect.Parameter], bound: dict[str, Binding], hints: dict[str, Any], name: str
) -> None:
    if unbound := set(params) - set(bound):
        raise _FunctionLoadError(
            name, f"the following parameters are declared in Python but not in function.json: {unbound!r}"
        )
    if missing := set(bound) - set(params):
        raise _FunctionLoadError(
            name, f"the following parameters are declared in function.json but not in Python: {missing!r}"
        )
    for param in params.values():
        _check_parameter(param.name, bound[param.name], hints, name)


def _check_parameter(param: str, binding: Binding, hints: dict[str, Any], name: str) -> None:
    has_annotation = param in hints
    annotation = hints.get(param)
    _probe_sdk_type(annotation)
    is_out = has_annotation and _is_out(annotation)
    binding_is_out = binding.direction == BindingDirection.OUT.value

    py_type: Any = annotation
    if is_out:
        args: tuple[Any, ...] = annotation.__args__ if isinstance(annotation, _TYPING_ALIAS) else ()
        if len(args) != 1:
            raise _FunctionLoadError(name, f"binding {param} has invalid Out annotation {annotation!r}")
        py_type = args[0]

    # The rule behind Azure/azure-functions-durable-python#468 and #499: an annotation must be a class or a
    # typing alias; `dict[str, Any]`, `list[str]`, `Optional[X]`, `X | None` and `Union[...]` are neither.
    if has_annotation and not isinstance(py_type, type) and not is_generic_type(py_type):
        raise _FunctionLoadError(name, f"binding {param} has invalid non-type annotation {annotation!r}")
    if binding_is_out and has_annotation and not is_out:
        raise _FunctionLoadError(
            name,
            f'binding {param} is declared to have the "out" direction, but its annotation in Python is not '
            "a subclass of azure.functions.Out",
        )
    if not binding_is_out and is_out:
        raise _FunctionLoadError(
            name,
            f'binding {param} is declared to have the "in" direction in function.json, but its annotation '
            "is azure.functions.Out in Python",
        )
    if not has_annotation:
        return  # an unannotated parameter takes whatever its binding decodes

    # A str/bytes parameter of a binding without implicit output is read through the generic binding.
    binding_type = GENERIC if py_type in (str, bytes) and not has_implicit_output(binding.type) else binding.type
    accepted = check_output_type(binding_type, py_type) if is_out else check_input_type(binding_type, py_type)
    if accepted:
        return
    # The v2 decorators leave dataType unset (None), which the worker tells apart from "undefined" (0).
    if binding.data_type != DataType.UNDEFINED.value:
        raise _FunctionLoadError(
            name,
            f'{param!r} binding type "{binding.type}" and dataType "{binding.data_type}" in function.json do not '
            f'match the corresponding function parameter\'s Python type annotation "{py_type.__name__}"',
        )
    raise _FunctionLoadError(
        name,
        f'type of {param} binding in function.json "{binding.type}" does not match its Python annotation '
        f'"{py_type.__name__}"',
    )


def _probe_sdk_type(annotation: Any) -> None:
    """The worker first asks azurefunctions-extensions-base, which it ships with, whether each annotation is an
    SDK type or an iterable of one (its `_ConverterMeta.check_supported_type`). That question tests the
    annotation's origin with `issubclass(origin, Iterable)`, which raises TypeError for `typing.Union` and
    `Optional[...]`: the host then reports that TypeError, not the worker's non-type message. The answer itself
    does not matter here, as SDK types come from binding extensions devhost does not run."""
    if annotation is None or isinstance(annotation, type):
        return
    origin = typing.get_origin(annotation)
    if origin is not None:
        issubclass(origin, collections.abc.Iterable)


def _is_out(annotation: Any) -> bool:
    """`func.Out[...]` (or Out itself): the parameter is an output binding."""
    if is_generic_type(annotation):
        origin = generic_origin(annotation)
        if origin is not None:
            return isinstance(origin, type) and origin.__name__ == "Out"
    return isinstance(annotation, type) and annotation.__name__ == "Out"


def _check_return(annotation: Any, binding_type: str, name: str) -> None:
    """Only a function with an explicit `$return` binding (HTTP) has its return annotation checked."""
    if is_generic_type(annotation) and generic_origin(annotation).__name__ == "Out":
        raise _FunctionLoadError(name, "return annotation should not be azure.functions.Out")
    if not isinstance(annotation, type):
        raise _FunctionLoadError(name, f"has invalid non-type return annotation {annotation!r}")
    if not check_output_type(binding_type, annotation):
        raise _FunctionLoadError(
            name, f'Python return annotation "{annotation.__name__}" does not match binding type "{binding_type}"'
        )
