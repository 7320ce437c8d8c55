"""Fault injection rules, from a JSON file (`--faults`) or the admin endpoint `/_emulator/faults`.

A rule: `{"op": "create", "match": {"name": "job-*", "image": "*"}, "fault": "throttle", "probability": 0.1,
"count": 5, ...fault parameters}`. `op` is one of create, get, delete, stop, start, restart, list, logs or
`*`; `count` limits how often the rule fires (omit for unlimited); `probability` defaults to 1.

Faults answered at the API: `throttle` (429 + Retry-After, `retryAfter` seconds), `error` (`status`,
`code`, `message`; `code: null` sends a message-only body like real ACI), `quota` (400
ContainerGroupQuotaReached), `pull_failure` (400 InaccessibleImage at create).
Faults applied to a created group's life: `capacity` (provisioning fails with ACI's capacity message and no
code), `slow` (`seconds` of extra provisioning), `evict` (a Spot group is evicted after `afterSeconds`, with only
the signals ACI documents for that: see `GroupRuntime.evict`; Regular groups are never evicted), `kill` (the
container is killed with exit 137 after `afterSeconds`), `vanish` (the group is deleted out of band after
`afterSeconds`).
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Fault(StrEnum):
    """What a rule does; the value is its `fault` in the JSON rule."""

    THROTTLE = "throttle"
    ERROR = "error"
    QUOTA = "quota"
    PULL_FAILURE = "pull_failure"
    CAPACITY = "capacity"
    SLOW = "slow"
    EVICT = "evict"
    KILL = "kill"
    VANISH = "vanish"


class Operation(StrEnum):
    """The API operations a rule can match (`op`; `*` matches all of them)."""

    CREATE = "create"
    GET = "get"
    DELETE = "delete"
    STOP = "stop"
    START = "start"
    RESTART = "restart"
    LIST = "list"
    LOGS = "logs"


# Answered at the API instead of the operation; the others change a created group's life.
API_FAULTS = frozenset({Fault.THROTTLE, Fault.ERROR, Fault.QUOTA, Fault.PULL_FAILURE})
LIFE_FAULTS = frozenset(set(Fault) - API_FAULTS)
ANY_OPERATION = "*"
OPERATIONS = frozenset({*(op.value for op in Operation), ANY_OPERATION})
FAULT_NAMES = frozenset(fault.value for fault in Fault)


class FaultRuleInvalid(ValueError):
    pass


@dataclass
class FaultRule:
    op: str  # an `Operation` value or `*`
    fault: Fault
    match: dict[str, str] = field(default_factory=dict)
    probability: float = 1.0
    count: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    fired: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        if not isinstance(data, dict):
            raise FaultRuleInvalid("a fault rule must be a JSON object")
        op, fault = data.get("op", ANY_OPERATION), data.get("fault")
        if not isinstance(op, str) or op not in OPERATIONS:
            raise FaultRuleInvalid(f"op must be one of {sorted(OPERATIONS)}")
        if not isinstance(fault, str) or fault not in FAULT_NAMES:
            raise FaultRuleInvalid(f"fault must be one of {sorted(FAULT_NAMES)}")
        if fault in LIFE_FAULTS and op not in {Operation.CREATE, ANY_OPERATION}:
            raise FaultRuleInvalid(f"fault '{fault}' applies to a group's life: use op 'create'")
        probability = data.get("probability", 1.0)
        count = data.get("count")
        if not isinstance(probability, int | float) or not 0 <= probability <= 1:
            raise FaultRuleInvalid("probability must be a number from 0 to 1")
        if count is not None and (not isinstance(count, int) or count < 0):
            raise FaultRuleInvalid("count must be a non-negative integer")
        match = data.get("match", {})
        if not isinstance(match, dict) or set(match) - {"name", "image"}:
            raise FaultRuleInvalid("match may hold 'name' and/or 'image' glob patterns")
        params = {k: v for k, v in data.items() if k not in {"op", "fault", "match", "probability", "count"}}
        return cls(op, Fault(fault), dict(match), float(probability), count, params)

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op, "fault": self.fault, "match": self.match, "probability": self.probability,
            "count": self.count, "fired": self.fired, **self.params,
        }  # fmt: skip

    def matches(self, op: Operation, name: str, image: str | None) -> bool:
        if self.op not in {ANY_OPERATION, op}:
            return False
        if "name" in self.match and not fnmatch.fnmatchcase(name, self.match["name"]):
            return False
        return "image" not in self.match or (image is not None and fnmatch.fnmatchcase(image, self.match["image"]))


class FaultBook:
    """The active rules; thread-safe because the server and the lifecycle tasks both consult it."""

    def __init__(self, seed: int | None = None) -> None:
        self.rules: list[FaultRule] = []
        self.random = random.Random(seed)
        self.lock = threading.Lock()

    def add(self, data: dict[str, Any]) -> FaultRule:
        rule = FaultRule.from_dict(data)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def draw(self, op: Operation, name: str, image: str | None, kinds: frozenset[Fault]) -> list[FaultRule]:
        """The rules of the given kinds that fire now (each firing counts)."""
        fired = []
        with self.lock:
            for rule in self.rules:
                if rule.fault not in kinds or not rule.matches(op, name, image):
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if self.random.random() < rule.probability:
                    rule.fired += 1
                    fired.append(rule)
        return fired
