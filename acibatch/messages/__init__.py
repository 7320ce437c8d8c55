"""Typed messages across the Durable boundary: one model per activity input/result and entity operation.

Each model is defined once and used by both sides: the orchestrator builds an input with `to_dict()` and reads a
result with `parse()`; the activity or entity reads the input with `parse()` and answers with `to_dict()`.

The JSON is a contract with histories already stored: an orchestration replays its whole history on every
episode, so an instance started by an older release reads old results with today's `parse()`, and today's
`to_dict()` must write what that release wrote (key names, key order, which keys are left out), so a history
recorded before this module existed replays unchanged. Each `to_dict()` therefore states its wire form by hand.

Representation: frozen, slotted dataclasses with hand-written `parse`/`to_dict`. pydantic v2 models parse about
as fast, but their dumps cannot say "this key only when set, that one even when None" per call without per-model
serializer code, and the exact form is the whole point here; TypedDicts cost nothing but check nothing at run
time and give no enums. A replayed episode parses each result it reads again, so parsing stays a few dict reads
per message (the measured cost is in bench/README.md).
"""
