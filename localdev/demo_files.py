"""The demo's third tenant, `gamma`: a job that moves files through blob storage, checked against the demo's own count.

The demo writes a small corpus (a few text files, one in a sub-folder), uploads it as gamma's input set `corpus`
(what `autoStorageContainerName` names), and submits examples/files-job.json with one input added: a stop-word
list the demo serves itself on loopback, fetched by `httpUrl` (so the stack allows plain http to 127.0.0.1, as
the integration tests' stacks do). Three tasks of examples/worker/wordcount.py each stage both into the working
directory, count the words of their share of the files and upload `out/counts.json`, `out/summary.txt` and a
`reports/<file>.csv` per file. The checks download every output through the API and compare it with counts this
module makes itself from the text it generated.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

from localdev.client import BatchClient
from localdev.localstack import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "files-job.json"
INPUT_SET = "corpus"  # the example's autoStorageContainerName
GAMMA_QUOTA = {"maxGroups": 2, "maxCores": 2, "maxMemoryGb": 2, "weight": 1}
CORPUS_FILES = ("river.txt", "forest.txt", "harbour.txt", "notes/mountain.txt", "notes/desert.txt")
VOCABULARY = ("the", "a", "of", "and", "stone", "water", "light", "wind", "salt", "pine", "river", "boat", "rope",
              "night", "morning", "hill", "path", "cloud", "dust", "lantern", "bridge", "orchard", "gate", "it's",
              "winter", "summer", "field", "crow", "heron", "tide", "shore", "moss", "ember")  # fmt: skip
WORDS_PER_FILE = 400
STOP_WORDS = ("the", "a", "of", "and")
# The stack's outbound rules for tenant URLs (acibatch/outbound.py): plain http to this machine, for the list above.
LOOPBACK_HTTP_SETTINGS = {"BATCH_OUTBOUND_ALLOW_HTTP": "true", "BATCH_OUTBOUND_ALLOW": "127.0.0.1"}
# What wordcount.py counts as a word (the same rule, so the two counts can be compared).
WORD = re.compile(r"[a-z']+")

Check = Callable[[str, bool, str], None]


def make_corpus(seed: int = 24) -> dict[str, str]:
    """The input set: path -> text, lines of words drawn from a small vocabulary so that counts repeat."""
    rng = random.Random(seed)
    corpus = {}
    for path in CORPUS_FILES:
        words = [rng.choice(VOCABULARY) for _ in range(WORDS_PER_FILE)]
        lines = [" ".join(words[i : i + 12]).capitalize() + "." for i in range(0, len(words), 12)]
        corpus[path] = "\n".join(lines) + "\n"
    return corpus


def word_counts(text: str) -> Counter[str]:
    return Counter(word for word in WORD.findall(text.lower()) if word not in STOP_WORDS)


class StopWords(BaseHTTPRequestHandler):
    """Answers every GET with the stop-word list: the web server an `httpUrl` input comes from."""

    def do_GET(self) -> None:
        body = "\n".join(STOP_WORDS).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the demo's terminal shows progress, not requests
        pass


@contextmanager
def stop_words_server() -> Iterator[str]:
    """Serve the stop-word list on a free loopback port while the demo runs; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), StopWords)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/stopwords.txt"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def gamma_spec(stop_words_url: str) -> dict[str, Any]:
    """examples/files-job.json, with the stop-word list added as a job-level `httpUrl` input."""
    spec: dict[str, Any] = json.loads(EXAMPLE.read_text())
    spec["resourceFiles"] = [*spec["resourceFiles"], {"httpUrl": stop_words_url, "filePath": "stopwords.txt"}]
    return spec


def submit_gamma(client: BatchClient, corpus: dict[str, str], stop_words_url: str) -> str:
    """Upload the corpus as the input set, then submit the job; the job's id."""
    for path, text in corpus.items():
        client.upload_input(INPUT_SET, path, text.encode())
    return str(client.submit(gamma_spec(stop_words_url))["jobId"])


def read_output(client: BatchClient, job_id: str, task_id: str, name: str) -> bytes:
    with client.open_file(job_id, task_id, name) as response:
        data: bytes = response.read()
    return data


def check_gamma(client: BatchClient, job_id: str, corpus: dict[str, str], check: Check) -> None:
    """Every task's outputs are listed, download with the listed sha256, and hold the counts of the corpus."""
    job = client.job(job_id, limit=0)
    check("gamma job succeeded", job["state"] == "Succeeded", job["state"])
    listed = sorted(item["path"] for item in client.inputs(INPUT_SET)["files"])
    check("gamma: the input set holds the corpus", listed == sorted(corpus), ", ".join(listed))
    total: Counter[str] = Counter()
    summary: dict[str, tuple[int, int]] = {}
    reports: dict[str, dict[str, int]] = {}
    bad_hashes: list[str] = []
    for task in client.all_tasks(job_id):
        print(f"    task {task['id']:<4} {task['state']:<9} attempts {task['attempts']} exit {task['exitCode']}")
        for item in client.task_files(job_id, task["id"])["files"]:
            data = read_output(client, job_id, task["id"], item["name"])
            if hashlib.sha256(data).hexdigest() != item["sha256"] or len(data) != item["size"]:
                bad_hashes.append(item["name"])
            if item["file"] == "out/counts.json":
                total.update(json.loads(data))
            elif item["file"] == "out/summary.txt":
                for line in data.decode().splitlines():
                    name, words, distinct = line.split("\t")
                    summary[name] = (int(words), int(distinct))
            elif item["file"].startswith("reports/"):
                table = csv.DictReader(io.StringIO(data.decode()))
                reports[Path(item["file"]).name] = {row["word"]: int(row["count"]) for row in table}
    check("gamma: every output downloads whole (size and sha256 as listed)", not bad_hashes, ", ".join(bad_hashes))
    expected = sum((word_counts(text) for text in corpus.values()), Counter())
    check(
        "gamma: the merged word counts are right (stop words from the httpUrl input left out)",
        total == expected,
        f"{sum(total.values())} words",
    )
    per_file = {path: word_counts(text) for path, text in corpus.items()}
    wanted = {path: (sum(c.values()), len(c)) for path, c in per_file.items()}
    check("gamma: the per-file summaries are right", summary == wanted, f"{len(summary)} of {len(wanted)} files")
    reports_ok = set(reports) == {path.replace("/", "_") + ".csv" for path in corpus} and all(
        len(rows) == min(10, len(per_file[path])) and all(per_file[path][w] == n for w, n in rows.items())
        for path in corpus
        if (rows := reports.get(path.replace("/", "_") + ".csv")) is not None
    )
    check("gamma: a top-words report per file, with right counts", reports_ok, ", ".join(sorted(reports)))
    logged = client.log_page(job_id, "0").content.decode()
    check("gamma: task 0's whole stdout kept in blob storage", "task 0:" in logged, logged[-80:])
