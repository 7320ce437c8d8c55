"""Job schedules, one job per module: the spec (`spec`), fire times (`recurrence`), what a wake-up does
(`wake`) and the schedule entity's state (`state`). `acibatch.schedules` re-exports them for callers."""
