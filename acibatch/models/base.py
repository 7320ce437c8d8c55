"""What every API model shares: camelCase aliases from one generator, request-only checks, and errors that say
what to fix at the path the client wrote.

Pydantic checks types, bounds, patterns and enums; its messages are generic ("Input should be ..."), so a field
names its own with `Hint`, and the checks pydantic cannot express (a rule across fields, a duplicate across list
items, a count named in the message) run as `Checked` functions or as a model's `request_problems`. Both report
beside pydantic's findings, so every problem in a body still comes back at once.

A request is validated with `validate_request(...)`; otherwise (our own stored JSON, or Python code building a
model) unknown-field and cross-field checks are skipped: that data was checked when it came in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    model_serializer,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from acibatch.outbound import OutboundPolicy

# The error type of every message written here; pydantic's own types are replaced before a client sees them.
SPEC_ERROR = "spec"
UNKNOWN_PREFIX = "unknown field"  # how every model's UNKNOWN_FIELD message begins
HINT_ERROR = "hint"  # a field's `Hint`, its message written when read
KEY_MARKER = "[key]"  # pydantic's loc element for a dict key's own error

Loc = tuple[str | int, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)
Parsed = TypeVar("Parsed")
Problem = tuple[Loc, str]


@dataclass(frozen=True)
class RequestContext:
    """Marks a validation as a client's request; `outbound` is the policy for URLs the app will call, and
    `storage_enabled` whether blob storage is configured (without it a job that moves files is refused)."""

    outbound: OutboundPolicy | None = None
    storage_enabled: bool = False


# Set while a request is validated (`validate_request`); unset, validation is of our own stored JSON. A context
# variable rather than pydantic's validation context: it costs nothing on the models that do not ask for it.
_REQUEST: ContextVar[RequestContext | None] = ContextVar("acibatch_request", default=None)


def validate_request(
    model: type[ModelT], data: Any, outbound: OutboundPolicy | None = None, *, storage_enabled: bool = False
) -> ModelT:
    """Validate a client's `data` as `model`, with every request rule; raises pydantic's ValidationError."""
    token = _REQUEST.set(RequestContext(outbound, storage_enabled))
    try:
        return model.model_validate(data)
    finally:
        _REQUEST.reset(token)


def current_request() -> RequestContext | None:
    return _REQUEST.get()


def validate_stored(adapter: TypeAdapter[Parsed], data: Any) -> Parsed:
    """Validate `data` as our own JSON (no request rules), also while a request is being validated."""
    token = _REQUEST.set(None)
    try:
        return adapter.validate_python(data)
    finally:
        _REQUEST.reset(token)


def problem(message: str) -> PydanticCustomError:
    # The message goes in the context: a literal '{' in it (as in '{"id": "t1"}') must not read as a placeholder.
    return PydanticCustomError(SPEC_ERROR, "{message}", {"message": message})


def raise_problems(problems: list[Problem]) -> None:
    if problems:
        details = [InitErrorDetails(type=problem(message), loc=loc, input=None) for loc, message in problems]
        raise PydanticValidationError.from_exception_data("request", details)


def problems_of(error: PydanticValidationError) -> list[Problem]:
    return [(tuple(item["loc"]), _message(item)) for item in error.errors(include_url=False)]


def _first_index(item: Problem) -> tuple[int, bool]:
    """A list's problems by item; within an item, a field it should not have comes first, as it does alone."""
    loc, message = item
    own_unknown = len(loc) == 2 and message.startswith(UNKNOWN_PREFIX)
    return (loc[0] if loc and isinstance(loc[0], int) else -1, not own_unknown)


def merge(before: list[Problem], found: list[Problem], *, by_item: bool = False) -> list[Problem]:
    """`before` (checks on the raw value) then pydantic's `found`; `by_item` orders a list's problems by item."""
    merged = [*before, *found]
    return sorted(merged, key=_first_index) if by_item else merged


class Hint:
    """Field metadata: the message (or a function of the offending value) for an error in this field.

    `collapse`: any error inside the value becomes this one message at the field (a list of strings with a number
    in it is one error, not one per item), so a check with its own message goes after the hint, not inside it;
    otherwise only errors at the field's own level are replaced."""

    def __init__(self, message: str | Callable[[Any], str], *, collapse: bool = True) -> None:
        self.message, self.collapse = message, collapse

    def text(self, value: Any) -> str:
        return str(self.message(value)) if callable(self.message) else self.message

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        inner = handler(source)
        if self.collapse:
            # In pydantic-core itself: no Python call while the value is fine (a 10,000-task job has many ids).
            # The message is written when a client reads it (`problems_of`), from the value it sent.
            _HINTS.append(self)
            context = {"hint": len(_HINTS) - 1}
            return core_schema.custom_error_schema(
                inner, custom_error_type=HINT_ERROR, custom_error_message="{hint}", custom_error_context=context
            )
        return core_schema.no_info_wrap_validator_function(self._validate, inner)

    def _validate(self, value: Any, handler: core_schema.ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except PydanticValidationError as error:
            raise_problems(self._rewrite(value, error.errors(include_url=False)))
            raise

    def _rewrite(self, value: Any, errors: list[Any]) -> list[Problem]:
        """Errors at the field's own level get the hint; those inside it keep theirs."""
        rewritten: list[Problem] = []
        for item in errors:
            loc = tuple(item["loc"])
            own = not loc and item["type"] not in (SPEC_ERROR, HINT_ERROR)
            entry = (loc, self.text(value) if own else _message(item))
            if entry not in rewritten:
                rewritten.append(entry)
        return rewritten


_HINTS: list[Hint] = []  # every collapsing hint, by the number its errors carry


def _message(item: Any) -> str:
    """The message of one of pydantic's error items: a hint's, written from the value sent, or the text itself."""
    if item["type"] == HINT_ERROR:
        return _HINTS[int(item["ctx"]["hint"])].text(item["input"])
    return str(item["msg"])


class Checked:
    """Field metadata: `check(raw value)` returns problems pydantic cannot find (a duplicate across items, a count
    in the message); they are reported with pydantic's, ordered by list item when `by_item`. `own_hint` words
    pydantic's errors at the field's own level (a list that is not one), as a non-collapsing `Hint` would."""

    def __init__(
        self, check: Callable[[Any], list[Problem]], *, by_item: bool = False, own_hint: str | None = None
    ) -> None:
        self.check, self.by_item = check, by_item
        self.hint = None if own_hint is None else Hint(own_hint, collapse=False)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_wrap_validator_function(self._validate, handler(source))

    def _validate(self, value: Any, handler: core_schema.ValidatorFunctionWrapHandler) -> Any:
        before = self.check(value)
        try:
            result = handler(value)
        except PydanticValidationError as error:
            items = error.errors(include_url=False)
            found = self.hint._rewrite(value, items) if self.hint else [(tuple(i["loc"]), _message(i)) for i in items]
            # A dict key's own error is reported at the key, as the client reads it ('env.NAME'); pydantic marks it
            # with a '[key]' element, which a key of that very name would be mistaken for anywhere else.
            if isinstance(value, dict):
                found = [(loc[:-1] if len(loc) == 2 and loc[1] == KEY_MARKER else loc, msg) for loc, msg in found]
            raise_problems(merge(before, found, by_item=self.by_item))
            raise
        raise_problems(before)
        return result


class Nullable:
    """Field metadata: a request may send null, meaning the same as leaving the field out."""

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        found = handler(schema)
        if isinstance(found.get("type"), str):
            return {**found, "type": [found["type"], "null"]}
        return {"anyOf": [found, {"type": "null"}]}


NULLABLE = Nullable()


def _hint_of(model: type[BaseModel], name: str) -> Hint | None:
    field = model.model_fields.get(name)
    return next((item for item in field.metadata if isinstance(item, Hint)), None) if field else None


class StoredModel(BaseModel):
    """A model kept in Durable state or answered by the API: camelCase JSON from one alias generator.

    `OMIT_WHEN_DEFAULT` names fields written only when they differ from their default, so JSON stored before they
    existed stays byte-for-byte the same (and keeps its fingerprint). Unknown fields in stored JSON are ignored,
    as a newer version's state must still load."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
        # A response always carries every field, so the document marks them required (defaults included).
        json_schema_serialization_defaults_required=True,
    )

    OMIT_WHEN_DEFAULT: ClassVar[frozenset[str]] = frozenset()

    # No return annotation on purpose: with one, pydantic takes it as the serialized schema and the OpenAPI
    # document would lose every field of the response models.
    @model_serializer(mode="wrap")
    def _omit_defaults(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo):  # type: ignore[no-untyped-def]
        data = handler(self)
        if isinstance(data, dict):
            for alias, name, default in _omittable(type(self)):
                if getattr(self, name) == default:
                    data.pop(alias if info.by_alias else name, None)
        return data

    def to_dict(self) -> dict[str, Any]:
        """The canonical camelCase JSON (what is stored and fingerprinted)."""
        data: dict[str, Any] = self.model_dump(by_alias=True, mode="json")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild from `to_dict()` output (trusted: our own durable state)."""
        return cls.model_validate(data)


@functools.cache
def _omittable(model: type[StoredModel]) -> tuple[tuple[str, str, Any], ...]:
    return tuple(
        (field.alias or name, name, field.get_default(call_default_factory=True))
        for name, field in model.model_fields.items()
        if (field.alias or name) in model.OMIT_WHEN_DEFAULT
    )


class RequestNames(NamedTuple):
    allowed: frozenset[str]  # the JSON names a request may use
    nullable: frozenset[str]  # those it may send as null
    by_alias: dict[str, str]  # each field's name by its JSON name
    unknown_field: str  # the message for a name not allowed
    order: dict[str, int]  # rank of the field a problem is at (ApiModel.PROBLEM_ORDER, then declared order)
    own_rules: bool  # whether the model has rules across its fields (request_problems)
    after_rules: bool  # ... or rules on the parsed model (request_after)


@functools.cache
def _request_names(model: type[ApiModel]) -> RequestNames:
    by_alias = {field.alias or name: name for name, field in model.model_fields.items()}
    allowed = frozenset(set(by_alias) - model.STORED_ONLY | model.REQUEST_ONLY)
    nullable = frozenset(
        field.alias or name
        for name, field in model.model_fields.items()
        if any(isinstance(item, Nullable) for item in field.metadata)
    )
    return RequestNames(
        allowed,
        nullable,
        by_alias,
        model.UNKNOWN_FIELD.format(allowed=", ".join(sorted(allowed))),
        {name: rank for rank, name in enumerate(dict.fromkeys([*model.PROBLEM_ORDER, *by_alias]))},
        model.request_problems.__func__ is not ApiModel.request_problems.__func__,  # type: ignore[attr-defined]
        model.request_after.__func__ is not ApiModel.request_after.__func__,  # type: ignore[attr-defined]
    )


class ApiModel(StoredModel):
    """A body (or part of one) the API accepts, which is also its canonical stored form.

    Subclasses may set `UNKNOWN_FIELD` (the message for a field they do not have), `NOT_AN_OBJECT`, `EXACT_SHAPE`
    (an object that must have exactly its fields, else this one message), fields a request must not send
    (`STORED_ONLY`) or may send beyond the model's (`REQUEST_ONLY`), and `request_problems` / `request_after` for
    rules across fields."""

    model_config = ConfigDict(extra="forbid")

    UNKNOWN_FIELD: ClassVar[str] = UNKNOWN_PREFIX + "; allowed: {allowed}"
    NOT_AN_OBJECT: ClassVar[str | None] = None
    EXACT_SHAPE: ClassVar[str | None] = None
    STORED_ONLY: ClassVar[frozenset[str]] = frozenset()
    REQUEST_ONLY: ClassVar[frozenset[str]] = frozenset()
    # The order problems are listed in, by the field they are at: "" for the object itself, "name[]" for a list's
    # items (else with the list), "=name" for a rule across fields reported at `name` with the location
    # ("", "name"). Fields not named follow in their declared order; unknown fields come first.
    PROBLEM_ORDER: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def request_fields(cls) -> frozenset[str]:
        """The JSON names a request may use."""
        return _request_names(cls)[0]

    @classmethod
    def request_problems(
        cls, raw: dict[str, Any], data: dict[str, Any], request: RequestContext
    ) -> tuple[dict[str, Any], list[Problem]]:
        """Rules across fields, on a request's raw object: the data to validate (sugar expanded) and problems."""
        return data, []

    @classmethod
    def request_after(
        cls, data: dict[str, Any], parsed: Self | None, found: list[Problem], request: RequestContext
    ) -> list[Problem]:
        """Rules that need the parsed model (`parsed` is None when pydantic found problems, listed in `found`)."""
        return []

    @model_validator(mode="wrap")
    @classmethod
    def _checked(cls, value: Any, handler: Callable[[Any], Self]) -> Self:
        request = _REQUEST.get()
        if request is None or isinstance(value, cls):
            return handler(value)
        shape = cls.EXACT_SHAPE
        if not isinstance(value, dict) or (shape is not None and set(value) != cls.request_fields()):
            message = shape or cls.NOT_AN_OBJECT
            if message is None:
                return handler(value)
            raise_problems([((), message)])
        names = _request_names(cls)
        before: list[Problem] = [((name,), names.unknown_field) for name in value if name not in names.allowed]
        data = value
        # A null where the field allows one means the same as leaving the field out: its default applies.
        if before or any(value.get(name, False) is None for name in names.nullable):
            before.sort()
            data = {
                name: item
                for name, item in value.items()
                if name in names.allowed and (item is not None or name not in names.nullable)
            }
        if names.own_rules:
            data, found = cls.request_problems(value, data, request)
            before.extend(found)
        try:
            result = handler(data)
        except PydanticValidationError as error:
            problems = _missing_hinted(cls, names.by_alias, error)
            after = cls.request_after(data, None, [*before, *problems], request) if names.after_rules else []
            raise_problems(_in_order(names, [*before, *problems, *after]))
            raise
        if names.after_rules:
            before.extend(cls.request_after(data, result, before, request))
        raise_problems(_in_order(names, before) if len(before) > 1 else before)
        return result


def _in_order(names: RequestNames, problems: list[Problem]) -> list[Problem]:
    """Problems in the order a reader goes through the object (see `ApiModel.PROBLEM_ORDER`)."""

    def rank(item: Problem) -> int:
        loc, message = item
        if loc and loc[0] not in names.allowed and message == names.unknown_field:
            return -1
        name = str(loc[0]) if loc else ""
        if name == "" and len(loc) > 1:  # a rule across fields, reported at one of them: ranked as "=<field>"
            name = f"={loc[1]}"
        elif len(loc) > 1 and isinstance(loc[1], int) and f"{name}[]" in names.order:
            name = f"{name}[]"
        return names.order.get(name, len(names.order))

    return sorted(problems, key=rank)


def _missing_hinted(model: type[BaseModel], by_alias: dict[str, str], error: PydanticValidationError) -> list[Problem]:
    """pydantic's problems; a required field left out gets its field's hint, as a wrong value would."""
    problems: list[Problem] = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        hint = _hint_of(model, by_alias.get(str(loc[0]), "")) if item["type"] == "missing" and len(loc) == 1 else None
        problems.append((loc, hint.text(None) if hint is not None else _message(item)))
    return problems


def spec_path(loc: Loc, prefix: str = "") -> str:
    """A pydantic location as the path a client reads: `tasks[3].env.NAME`."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path
