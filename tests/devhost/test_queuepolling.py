"""The idle-queue polling model of `devhost.queuepolling` (DTFx's BackoffPollingHelper and queue loops)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devhost.launcher import DevhostProcess
from devhost.queuepolling import (
    CLIENT,
    MIN_INTERVAL,
    SCHEDULED,
    Backoff,
    Config,
    Latency,
    QueueLatency,
    QueuePoller,
    parse_timespan,
    partition_of,
    read_config,
)
from tests.httpserve import call_json as request


def idle_waits(poller: QueuePoller, until: float) -> list[tuple[float, float]]:
    """(poll time, the wait after it) of an idle loop up to `until`, stepping the model as `seen_at` does."""
    waits = []
    while poller.next_poll <= until:
        waits.append((poller.next_poll, poller.backoff.current))
        poller.next_poll += poller.backoff.current
        poller.backoff.update(signaled=False)
    return waits


def test_backoff_grows_from_the_minimum_doubling_the_increment_with_bounded_jitter() -> None:
    for seed in range(50):
        backoff = Backoff(maximum=30.0, rng=random.Random(seed))
        backoff.update(signaled=False)
        assert backoff.current == MIN_INTERVAL  # a new loop's first empty wait is zero, then the minimum
        for exponent in range(1, 10):
            backoff.update(signaled=False)
            increment = backoff.current - MIN_INTERVAL
            nominal = 2 ** (exponent - 1) * MIN_INTERVAL
            assert 0.8 * nominal - 1e-9 <= increment <= 1.2 * nominal + 1e-9, (seed, exponent, backoff.current)


def test_backoff_stops_at_the_maximum_and_a_wake_resets_it() -> None:
    backoff = Backoff(maximum=30.0, rng=random.Random(1))
    for _ in range(40):
        backoff.update(signaled=False)
    assert backoff.current == 30.0
    backoff.update(signaled=False)
    assert backoff.current == 30.0
    backoff.update(signaled=True)
    assert (backoff.current, backoff.exponent) == (MIN_INTERVAL, 1)


def test_an_idle_poller_reaches_the_30_s_interval_within_about_a_minute() -> None:
    # 0, 0.05 s, then 0.05 + (0.8..1.2) * 0.05 * 2^(n-1): 30 s is reached after eleven or twelve empty waits,
    # 21 to 62 s into the idle stretch depending on the jitter.
    for seed in range(20):
        poller = QueuePoller(Backoff(maximum=30.0, rng=random.Random(seed)), next_poll=0.0)
        waits = idle_waits(poller, until=200.0)
        first_max = next(index for index, (_, wait) in enumerate(waits) if wait == 30.0)
        assert first_max in {11, 12}, (seed, waits)
        assert 20.0 < waits[first_max][0] < 65.0, (seed, waits[first_max])
        assert all(wait == 30.0 for _, wait in waits[first_max:])


def test_a_message_to_an_idle_queue_waits_for_the_next_poll_at_most_the_maximum() -> None:
    rng = random.Random(7)
    delays = []
    for sent in (100.0, 123.4, 150.1, 299.99, 1000.0):
        poller = QueuePoller(Backoff(maximum=30.0, rng=rng), next_poll=0.0)
        seen = poller.seen_at(sent)
        assert sent <= seen <= sent + 30.0
        delays.append(seen - sent)
    assert max(delays) > 1.0  # an idle queue really delays


def test_the_poll_that_finds_a_message_resets_the_back_off_for_the_next_one() -> None:
    poller = QueuePoller(Backoff(maximum=30.0, rng=random.Random(3)), next_poll=0.0)
    seen = poller.seen_at(500.0)
    # Right after that poll the loop polls again at once, then waits 50 ms, ~100 ms, ...
    assert poller.seen_at(seen) == seen
    assert poller.seen_at(seen + 0.01) == pytest.approx(seen + MIN_INTERVAL)
    assert poller.seen_at(seen + MIN_INTERVAL + 0.01) - (seen + MIN_INTERVAL) <= 0.2


def test_two_messages_sent_during_one_wait_are_seen_by_the_same_poll() -> None:
    poller = QueuePoller(Backoff(maximum=30.0, rng=random.Random(5)), next_poll=0.0)
    first = poller.seen_at(200.0)
    if first > 200.0 + 1e-6:
        assert poller.seen_at((200.0 + first) / 2) == first


def test_a_local_send_wakes_the_poller_at_once() -> None:
    poller = QueuePoller(Backoff(maximum=30.0, rng=random.Random(9)), next_poll=0.0)
    poller.woken(400.0)
    assert poller.seen_at(400.0) == 400.0


def test_partition_is_fnv1a_of_the_utf8_id() -> None:
    # Published FNV-1a 32-bit test vectors (the modulus 2**32 returns the hash itself).
    assert partition_of("", 2**32) == 0x811C9DC5
    assert partition_of("a", 2**32) == 0xE40C292C
    assert partition_of("foobar", 2**32) == 0xBF9CF968
    assert {partition_of(f"instance-{n}", 4) for n in range(100)} == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:00:30", 30.0), ("00:05:00", 300.0), ("1.02:00:00", 93600.0), ("00:00:00.5", 0.5), ("00:01", 60.0),
     ("2", 172800.0)],
)  # fmt: skip
def test_timespans_parse_like_dotnet(text: str, seconds: float) -> None:
    assert parse_timespan(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["30s", "00:60:00", "", "1:2:3:4"])
def test_a_bad_timespan_names_the_shape_to_use(text: str) -> None:
    with pytest.raises(ValueError, match="TimeSpan"):
        parse_timespan(text)


def host_json(**provider: object) -> dict[str, object]:
    return {"extensions": {"durableTask": {"storageProvider": provider}}}


def test_config_defaults_host_json_and_override() -> None:
    assert read_config({}, {}) == Config(Latency.OFF, 30.0, 4)
    config = read_config({"DEVHOST_QUEUE_LATENCY": "idle"}, host_json(maxQueuePollingInterval="00:00:10"))
    assert config == Config(Latency.IDLE, 10.0, 4)
    # .NET binds options case-insensitively; the environment override wins over host.json.
    overridden = read_config(
        {"DEVHOST_QUEUE_LATENCY": "IDLE", "DEVHOST_QUEUE_MAX_POLL_SECONDS": "3"},
        {
            "Extensions": {
                "DurableTask": {"StorageProvider": {"MaxQueuePollingInterval": "00:00:10", "partitionCount": 2}}
            }
        },
    )
    assert overridden == Config(Latency.IDLE, 3.0, 2)
    assert read_config({"DEVHOST_QUEUE_MAX_POLL_SECONDS": "0.001"}, {}).max_interval == MIN_INTERVAL


@pytest.mark.parametrize(
    ("env", "provider", "message"),
    [
        ({"DEVHOST_QUEUE_LATENCY": "slow"}, {}, "use off or idle"),
        ({"DEVHOST_QUEUE_MAX_POLL_SECONDS": "soon"}, {}, "seconds above 0"),
        ({"DEVHOST_QUEUE_MAX_POLL_SECONDS": "-1"}, {}, "seconds above 0"),
        ({}, {"maxQueuePollingInterval": "30 seconds"}, "maxQueuePollingInterval"),
        ({}, {"partitionCount": 17}, "from 1 to 16"),
    ],
)
def test_bad_settings_say_what_to_fix(env: dict[str, str], provider: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_config(env, host_json(**provider))


@dataclass
class Handle:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Clock:
    """A manual clock and timer list, so the bookkeeping is checked at exact instants."""

    time: float = 1000.0
    handles: list[Handle] = field(default_factory=list)

    def now(self) -> float:
        return self.time

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle:
        handle = Handle(self.time + delay, callback)
        self.handles.append(handle)
        return handle

    def advance(self, seconds: float) -> None:
        end = self.time + seconds
        while True:
            due = sorted((h for h in self.handles if not h.cancelled and h.when <= end), key=lambda h: h.when)
            if not due:
                break
            self.time = due[0].when
            self.handles.remove(due[0])
            due[0].callback()
        self.time = end


def latency(mode: Latency, clock: Clock, released: list[tuple[float, str]], partitions: int = 4) -> QueueLatency:
    return QueueLatency(
        Config(mode, 5.0, partitions),
        release=lambda key: released.append((clock.now(), key)),
        rng=random.Random(11),
        now=clock.now,
        call_later=clock.call_later,
    )


def same_partition(prefix: str, target: str, partitions: int = 4) -> str:
    wanted = partition_of(target, partitions)
    return next(f"{prefix}{n}" for n in range(1000) if partition_of(f"{prefix}{n}", partitions) == wanted)


def other_partition(prefix: str, target: str, partitions: int = 4) -> str:
    wanted = partition_of(target, partitions)
    return next(f"{prefix}{n}" for n in range(1000) if partition_of(f"{prefix}{n}", partitions) != wanted)


def test_off_delivers_everything_at_once() -> None:
    clock, released = Clock(), list[tuple[float, str]]()
    queues = latency(Latency.OFF, clock, released)
    clock.advance(600)
    assert queues.arrive("@tenant@t1", CLIENT) is True
    assert released == [] and clock.handles == []


def test_idle_holds_a_client_signal_until_the_poll_and_releases_it_then() -> None:
    clock, released = Clock(), list[tuple[float, str]]()
    queues = latency(Latency.IDLE, clock, released)
    clock.advance(600)  # long idle: every poller waits the 5 s maximum
    sent = clock.now()
    assert queues.arrive("@tenant@t1", CLIENT) is False
    clock.advance(5.0)
    assert [key for _, key in released] == ["@tenant@t1"]
    assert sent < released[0][0] <= sent + 5.0


def test_idle_delivers_within_a_partition_at_once_and_a_local_send_flushes_the_waiting_ones() -> None:
    clock, released = Clock(), list[tuple[float, str]]()
    queues = latency(Latency.IDLE, clock, released)
    clock.advance(600)
    target = "orchestration-a"
    assert queues.arrive(target, None) is True  # an activity result or a timer: the target's own queue
    assert queues.arrive(target, same_partition("entity-", target)) is True
    clock.advance(600)
    waiting = same_partition("waiting-", target)
    assert queues.arrive(waiting, other_partition("sender-", target)) is False
    clock.advance(0.001)
    assert released == []
    # The poller of that partition is woken by a local send: its poll sees the waiting message too.
    assert queues.arrive(target, None) is True
    assert released == [(clock.now(), waiting)]
    clock.advance(10)
    assert len(released) == 1  # the cancelled poll does not release it twice


# -- devhost with the mode on: a real host process and the features sample app --------------------------------------

FEATURES = Path(__file__).parent / "apps" / "features"
MAX_POLL = 3.0


def features_host(tmp_path: Path, data: Path, latency: str) -> DevhostProcess:
    env = {
        "FEATURES_MARK_DIR": str(tmp_path),
        "TICK_SCHEDULE": "0 0 0 1 1 *",  # no timer noise
        "DEVHOST_QUEUE_LATENCY": latency,
        "DEVHOST_QUEUE_MAX_POLL_SECONDS": str(MAX_POLL),
    }
    return DevhostProcess(FEATURES, data, env=env, log_path=tmp_path / f"devhost-{latency}.log")


def keys_in_distinct_partitions(count: int) -> list[str]:
    """Entity keys of the `counter` entity whose ids fall in `count` different control queues."""
    keys: dict[int, str] = {}
    for n in range(1000):
        keys.setdefault(partition_of(f"@counter@k{n}", 4), f"k{n}")
    return list(keys.values())[:count]


def wait_state(url: str, key: str, expected: int, timeout: float) -> float:
    """Seconds until the counter entity `key` holds `expected`."""
    start = time.monotonic()
    while request(f"{url}/api/entity/counter/{key}/get")[1]["state"] != expected:
        assert time.monotonic() - start < timeout, f"counter {key} never reached {expected}"
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.mark.e2e
def test_idle_mode_delays_client_signals_by_at_most_the_maximum_poll(tmp_path: Path) -> None:
    with features_host(tmp_path, tmp_path / "data", "idle") as host:
        keys = keys_in_distinct_partitions(4)
        # The pollers started together and back off alike, so a send can land just before all four poll: a
        # round sees a delay only when it does not. Up to three rounds, each after idling again.
        rounds: list[list[float]] = []
        while len(rounds) < 3 and not any(max(delays) > 0.3 for delays in rounds):
            time.sleep(2 * MAX_POLL)  # every poller backs off to the maximum
            sent = time.monotonic()
            for key in keys:  # four control queues, each with its own idle poller
                assert request(f"{host.url}/api/entity/counter/{key}/add", "POST", 1)[0] == 202
            for key in keys:
                wait_state(host.url, key, len(rounds) + 1, timeout=MAX_POLL + 5)
            rounds.append([time.monotonic() - sent])
            # Each signal waits for its queue's next poll: up to the maximum.
            assert rounds[-1][0] <= MAX_POLL + 2.0, rounds
        assert any(max(delays) > 0.3 for delays in rounds), rounds
        count = len(rounds)
        # The poll that finds a message resets its back-off: a signal sent right after it is seen quickly. (Sent
        # only after the other queues' waits, the back-off would have grown again meanwhile.)
        assert request(f"{host.url}/api/entity/counter/{keys[0]}/add", "POST", 1)[0] == 202
        wait_state(host.url, keys[0], count + 1, timeout=MAX_POLL + 5)
        assert request(f"{host.url}/api/entity/counter/{keys[0]}/add", "POST", 1)[0] == 202
        assert wait_state(host.url, keys[0], count + 2, timeout=MAX_POLL + 5) < 1.0


@pytest.mark.e2e
def test_a_held_back_signal_and_event_are_stored_at_once_and_survive_a_kill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    host = features_host(tmp_path, data, "idle")
    host.start()
    try:
        assert request(f"{host.url}/api/start/waits_for_go/held-1", "POST")[0] == 202
        deadline = time.monotonic() + MAX_POLL + 10
        while (request(f"{host.url}/api/status/held-1")[1] or {}).get("runtimeStatus") != "Running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(2 * MAX_POLL)  # idle again: the next client messages wait for a poll
        assert request(f"{host.url}/api/raise/held-1/Go", "POST", "kept")[0] == 202
        assert request(f"{host.url}/api/entity/counter/kept/add", "POST", 7)[0] == 202
    finally:
        host.kill()  # SIGKILL, most likely before either message was polled
    with features_host(tmp_path, data, "off") as again:
        assert wait_state(again.url, "kept", 7, timeout=10) < 10
        deadline = time.monotonic() + 10
        while (done := request(f"{again.url}/api/status/held-1")[1])["runtimeStatus"] != "Completed":
            assert time.monotonic() < deadline, done
            time.sleep(0.05)
        assert done["output"] == '"kept"'  # the Python client's event arrives JSON-encoded twice (README)


def test_idle_sees_a_timer_at_the_first_poll_after_its_fire_time() -> None:
    clock, released = Clock(), list[tuple[float, str]]()
    queues = latency(Latency.IDLE, clock, released)
    clock.advance(600)
    fired = clock.now()
    # Its own partition, but the message was added (and the poller woken) when the timer was scheduled.
    assert queues.arrive("orchestration-a", SCHEDULED) is False
    clock.advance(5.0)
    assert [key for _, key in released] == ["orchestration-a"]
    assert fired < released[0][0] <= fired + 5.0
