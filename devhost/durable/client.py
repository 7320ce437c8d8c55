"""What the Durable HTTP API asks of the engine: the client operations of the SDK's `DurableOrchestrationClient`.

Each one checks the instance's state and answers with the extension's status and message (`DurableError`) when
it cannot be done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from devhost import payloadlimits, queuepolling
from devhost.durable.engine import Engine
from devhost.durable.records import Instance
from devhost.durable.vocabulary import (
    EVENT_RAISED,
    EXECUTION_TERMINATED,
    RUNNING_STATES,
    TERMINAL_STATES,
    DurableError,
    event,
)


class DurableClient:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def instances(self) -> dict[str, Instance]:
        return self.engine.instances

    def history(self, instance: Instance) -> list[dict[str, Any]]:
        return self.engine.persistence.history(instance)

    def start(self, name: str, instance_id: str | None, input_value: Any) -> Instance:
        return self.engine.start_instance(name, instance_id, input_value)

    def raise_event(self, instance_id: str, name: str, input_text: str | None) -> None:
        instance = self.engine.instances.get(instance_id)
        if instance is None:
            raise DurableError(404, f"No instance with ID '{instance_id}' was found.")
        if instance.status in TERMINAL_STATES:
            raise DurableError(410, f"The instance '{instance_id}' is {instance.status} and cannot receive events.")
        problem = payloadlimits.payload_error(f"payload of event '{name}'", input_text)
        if problem is not None:
            raise DurableError(400, problem)
        self.engine.deliver(instance_id, event(EVENT_RAISED, Name=name, Input=input_text), sender=queuepolling.CLIENT)

    def terminate(self, instance_id: str, reason: str | None) -> None:
        instance = self.engine.require(instance_id)
        if instance.status in TERMINAL_STATES:
            raise DurableError(410, f"The instance '{instance_id}' is already {instance.status}.")
        instance.history.append(event(EXECUTION_TERMINATED, Input=reason))
        self.engine.finish(instance, "Terminated", reason, None)

    def suspend(self, instance_id: str) -> None:
        instance = self.engine.require(instance_id)
        if instance.status in TERMINAL_STATES:
            raise DurableError(410, f"The instance '{instance_id}' is already {instance.status}.")
        instance.status = "Suspended"
        instance.held = instance.held + instance.take_pending()
        self.engine.persistence.save(instance)

    def resume(self, instance_id: str) -> None:
        instance = self.engine.require(instance_id)
        if instance.status != "Suspended":
            raise DurableError(410, f"The instance '{instance_id}' is {instance.status}, not Suspended.")
        instance.status = "Running"
        instance.pending, instance.held = instance.held + instance.take_pending(), []
        self.engine.persistence.save(instance)
        if instance.pending:
            self.engine.scheduler.mark_ready(instance.id)

    def restart(self, instance_id: str, new_id: bool) -> Instance:
        instance = self.engine.require(instance_id)
        return self.engine.start_instance(instance.name, None if new_id else instance_id, instance.input)

    def purge(self, instance_id: str) -> bool:
        instance = self.engine.instances.get(instance_id)
        if instance is None:
            return False
        if instance.status in RUNNING_STATES:
            raise DurableError(400, f"The instance '{instance_id}' is {instance.status}; terminate it before purging.")
        self.engine.forget(instance_id)
        return True

    def signal_entity(self, entity_id: str, operation: str, input_text: str | None) -> None:
        self.engine.entities.signal(entity_id, operation, input_text)

    def entity_state(self, entity_id: str) -> tuple[Any, bool]:
        return self.engine.entities.state(entity_id)

    async def wait_for_completion(self, instance_id: str, timeout: float) -> None:
        instance = self.engine.instances.get(instance_id)
        if instance is None or instance.status in TERMINAL_STATES:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.engine.runtime(instance_id).completion_waiters.append(future)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(future, timeout)

    @contextlib.asynccontextmanager
    async def settled(self, instance_id: str) -> AsyncIterator[None]:
        """For a client operation that changes more than the pending queue (terminate, suspend, resume):
        wait until no episode of the instance is in flight, and start none until the operation is done."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self.engine.runtime(instance_id).settling
        waiters.append(waiter)
        try:
            if instance_id in self.engine.scheduler.in_flight:
                await waiter
            yield
        finally:
            waiters.remove(waiter)
            if not waiters:
                self.engine.after_episode(instance_id)
                self.engine.release_runtime(instance_id)  # the id may name no instance (a 404, or one purged)
