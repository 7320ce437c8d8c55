"""An example task: sums the squares of its slice of 1..N and reports the partial sum to acibatch.

acibatch sets BATCH_TASK_INDEX (0-based) per task; the job spec sets N and SLICES in `env`.
"""

import os

import acibatch_report

index = int(os.environ["BATCH_TASK_INDEX"])
n, slices = int(os.environ.get("N", "1000000")), int(os.environ.get("SLICES", "10"))
low, high = index * n // slices + 1, (index + 1) * n // slices
total = 0
for start in range(low, high + 1, 100_000):
    end = min(high, start + 99_999)
    total += sum(x * x for x in range(start, end + 1))
    acibatch_report.progress({"done": end - low + 1, "of": high - low + 1})
acibatch_report.succeeded({"partial": total, "range": [low, high]})
