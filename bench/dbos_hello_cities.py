"""HelloCities5 on DBOS (SQLite system database): N workflows of 5 sequential steps, started then awaited.

Prints one JSON line: {"workflows", "seconds", "events_per_second"} (10 events per workflow, as for devhost).
"""

import json
import os
import sys
import tempfile
import time

from dbos import DBOS

CITIES = ("Tokyo", "Seattle", "London", "Cairo", "Lima")


def main() -> None:
    count = int(sys.argv[1])
    path = os.path.join(tempfile.mkdtemp(prefix="dbos-bench-"), "dbos.sqlite")
    DBOS(config={"name": "hello-cities", "system_database_url": f"sqlite:///{path}"})

    @DBOS.step()
    def say_hello(city: str) -> str:
        return f"Hello {city}!"

    @DBOS.workflow()
    def hello_cities() -> list[str]:
        return [say_hello(city) for city in CITIES]

    DBOS.launch()
    started = time.perf_counter()
    handles = [DBOS.start_workflow(hello_cities) for _ in range(count)]
    results = [handle.get_result() for handle in handles]
    seconds = time.perf_counter() - started
    assert all(len(result) == len(CITIES) for result in results)
    DBOS.destroy()
    print(json.dumps({"workflows": count, "seconds": seconds, "events_per_second": count * 10 / seconds}))


if __name__ == "__main__":
    main()
