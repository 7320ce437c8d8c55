"""Entity state stored as JSON text the entity writes itself, with the value it came from kept between batches.

The Durable SDK decodes an entity's whole state before every batch of operations and encodes it again after,
with `json` and a hook called for every dict. The capacity entity holds every running lease and the whole fair
queue, a job's progress entity a state per task: with a thousand tasks waiting, that decoding and encoding was
nearly all of a capacity batch's time, on the path of every lease handed over (bench/README.md has the figures).
Stored as one JSON string (written with orjson) the state costs the SDK a string copy, and `KeptState` keeps the
text it stored last for each entity beside the value it came from, so a batch that starts from that text (the
entity's next batch on the same worker process: the usual case) does not parse it at all. Any other text is
parsed as usual.

Readers outside the entity get the text from the Durable client's `read_entity_state`: `read_stored` decodes
it. A state stored as a JSON object (by versions before this one) still loads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import orjson

if TYPE_CHECKING:
    import azure.durable_functions as df

Value = TypeVar("Value")
KEPT_PER_ENTITY_TYPE = 64  # entities of one type whose last value a worker keeps (a job's progress each)


class EntityContext(Protocol):
    """What of `azure.durable_functions.DurableEntityContext` this module uses."""

    @property
    def entity_key(self) -> str: ...

    def get_state(self, initializer: Callable[[], Any] | None = None) -> Any: ...

    def set_state(self, state: Any) -> None: ...


def stored_value(stored: Any) -> Any:
    """The JSON value of a stored entity state: the text `KeptState` wrote, decoded; an older object as is."""
    return orjson.loads(stored) if isinstance(stored, str) else stored


async def read_stored(client: df.DurableOrchestrationClient, entity: df.EntityId) -> Any:
    """An entity's stored JSON value, read through the Durable client; None when the entity has no state."""
    response = await client.read_entity_state(entity)
    return stored_value(response.entity_state) if response.entity_exists else None


class KeptState(Generic[Value]):
    """How one entity type's value is stored, and the values its entities stored last in this process.

    `from_json(to_json(value))` must equal `value` for every value the entity stores (plain dicts, lists,
    strings, ints and finite floats do), since a kept value stands in for parsing the text written from it.
    """

    def __init__(self, from_json: Callable[[Any], Value], to_json: Callable[[Value], Any]) -> None:
        self.from_json = from_json
        self.to_json = to_json
        self.kept: OrderedDict[str, tuple[str, Value]] = OrderedDict()
        self.lock = threading.Lock()  # Azure runs sync entity functions on a thread pool

    def load(self, context: EntityContext) -> Value:
        """The entity's current value (`from_json(None)` for an entity with no state yet)."""
        stored = context.get_state(lambda: None)
        with self.lock:
            # Taken out, not looked at: a value an operation changed without storing it (it raised) must
            # never be handed to the next operation in place of the text that is still the state.
            kept = self.kept.pop(context.entity_key, None)
        if kept is not None and kept[0] == stored:
            return kept[1]
        return self.from_json(stored_value(stored))

    def store(self, context: EntityContext, value: Value) -> None:
        """Make `value` the entity's state. Call it last: the value is kept as it is, so must not change after."""
        text = orjson.dumps(self.to_json(value)).decode()
        context.set_state(text)
        with self.lock:
            self.kept[context.entity_key] = (text, value)
            while len(self.kept) > KEPT_PER_ENTITY_TYPE:
                self.kept.popitem(last=False)
