"""An example task with files: counts the words of the input files acibatch staged, writes three kinds of output.

The job spec's `resourceFiles` put the inputs under the task's working directory (`$AZ_BATCH_TASK_WORKING_DIR`):
a corpus the tenant uploaded (`acibatch upload corpus ...`, named by `autoStorageContainerName`) in `input/`, and,
if the spec adds one (examples/files-job.json does not), a stop-word list fetched by `httpUrl` to `stopwords.txt`.
The task writes, under the same directory:
  out/counts.json       word -> count, over this task's share of the files (BATCH_TASK_INDEX of SLICES)
  out/summary.txt       one line per file: name, words, distinct words
  reports/<file>.csv    the ten most common words of each file
and the spec's `outputFiles` upload them to blob storage after the command ends.
"""

import json
import os
import re
from collections import Counter
from pathlib import Path

work = Path(os.environ["AZ_BATCH_TASK_WORKING_DIR"])
index, slices = int(os.environ.get("BATCH_TASK_INDEX", "0")), int(os.environ.get("SLICES", "1"))
stop = set((work / "stopwords.txt").read_text().split()) if (work / "stopwords.txt").exists() else set()
files = sorted(p for p in (work / "input").rglob("*.txt") if p.is_file())
mine = [p for i, p in enumerate(files) if i % slices == index]

total: Counter[str] = Counter()
summary = []
(work / "out").mkdir(exist_ok=True)
for path in mine:
    words = [w for w in re.findall(r"[a-z']+", path.read_text().lower()) if w not in stop]
    counts = Counter(words)
    total.update(counts)
    name = path.relative_to(work / "input").as_posix()
    summary.append(f"{name}\t{len(words)}\t{len(counts)}")
    report = work / "reports" / (name.replace("/", "_") + ".csv")
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("word,count\n" + "".join(f"{w},{c}\n" for w, c in counts.most_common(10)))
    print(f"counted {name}: {len(words)} words", flush=True)

(work / "out" / "counts.json").write_text(json.dumps(dict(sorted(total.items())), indent=0))
(work / "out" / "summary.txt").write_text("\n".join(summary) + "\n")
print(f"task {index}: {len(mine)} files, {sum(total.values())} words", flush=True)
