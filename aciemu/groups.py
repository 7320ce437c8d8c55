"""Container groups' lifecycle: the runtime that runs a group's processes (their stored state is `groupstate`).

One asyncio task per group drives it: Pending -> Creating (Pulling/Pulled events, the group's emptyDir volumes
made empty, init containers in order, each to completion) -> Succeeded with containers Running; container exits
apply the restart policy (with back-off); stop, restart, start and delete kill the processes. Evictions and kills
injected as faults look the way the README says (an eviction shows only what ACI documents of one: see
`GroupRuntime.evict`). State is saved after each step so groups survive an emulator restart, which the emulator
treats like a host reboot (a group whose secret volume files it no longer holds is failed, not restarted).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, Protocol

from aciemu import sandbox, volumes
from aciemu.faults import Fault
from aciemu.groupstate import TRANSITIONING, ContainerRun, Group, Timings, now_iso
from aciemu.limits import Priority

MAINTENANCE_EXIT_CODE = 7147
KILLED_EXIT_CODE = 137
LOG_CAP_BYTES = 4 * 1024 * 1024
RESTART_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)


class RuntimeHost(Protocol):
    """What a group's runtime needs from the emulator that owns it."""

    instance_marker: str  # tags every process of this emulator, so leftovers can be found and killed
    timings: Timings
    use_bwrap: bool

    def holds(self, group: Group) -> bool:
        """Whether the group still exists (a delete meanwhile ends what its runtime was doing)."""
        ...

    def save(self, group: Group) -> None: ...

    def log_dir(self, group: Group) -> Path: ...

    def catalog_command(self, image: str) -> list[str] | None: ...

    def container_files(self, group: Group, container: str, image: str) -> sandbox.ContainerFiles: ...

    def discard(self, path: Path) -> None:
        """Take a folder out of its place at once; it is deleted off the event loop."""
        ...

    def reset_volumes(self, group: Group) -> None:
        """Give the group empty emptyDir folders (a new deployment)."""
        ...

    def missing_secrets(self, group: Group) -> list[str]:
        """The group's secret volumes whose files are not held (lost with an emulator restart)."""
        ...

    async def delete_group(self, group: Group) -> None: ...


class GroupRuntime:
    """Runs one group's processes; owned by the `Emulator` (its `RuntimeHost`)."""

    def __init__(self, group: Group, host: RuntimeHost) -> None:
        self.group = group
        self.host = host
        self.task: asyncio.Task[None] | None = None
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.generation = 0  # bumps on stop/restart so a finishing process from an old run is ignored

    @property
    def marker(self) -> str:
        return f"{self.host.instance_marker}:{self.group.key}"

    def log_path(self, container: str) -> Path:
        path: Path = self.host.log_dir(self.group) / f"{container}.log"
        return path

    def start(self, after_reboot: bool = False) -> None:
        self.generation += 1
        self.task = asyncio.get_running_loop().create_task(self.run(self.generation, after_reboot))

    async def stop_processes(self, reason_event: str | None = None) -> None:
        self.generation += 1
        current = asyncio.current_task()
        if self.task is not None and self.task is not current and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        processes, self.processes = self.processes, {}
        for name, process in processes.items():
            run = self.group.containers.get(name) or self.group.init_containers.get(name)
            if run is not None and reason_event:
                run.event("Killing", f"Killing container {name}")
            await sandbox.terminate(process, self.marker, self.host.timings.stop_grace_seconds, self.host.use_bwrap)
        sandbox.kill_marked(self.marker, self.host.use_bwrap)

    def save(self) -> None:
        self.host.save(self.group)

    def env_for(self, spec: dict[str, Any]) -> dict[str, str]:
        env = {"HOSTNAME": self.group.name}  # PATH and HOME come from the sandbox: they depend on what it shows
        for item in spec.get("properties", {}).get("environmentVariables") or []:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue  # stored by an emulator older than the PUT's shape checks; rendering skips it too
            value = item.get("secureValue") if item.get("secureValue") is not None else item.get("value")
            env[str(item["name"])] = "" if value is None else str(value)
        return env

    def command_for(self, spec: dict[str, Any]) -> list[str] | None:
        command = spec.get("properties", {}).get("command")
        if command and isinstance(command, list):
            return [str(arg) for arg in command]
        default: list[str] | None = self.host.catalog_command(spec.get("properties", {}).get("image", ""))
        return default

    async def launch(self, spec: dict[str, Any], run: ContainerRun) -> asyncio.subprocess.Process | None:
        name = spec["name"]
        command = self.command_for(spec)
        if command is None:  # validated at PUT; a catalog change since then lands here
            run.terminated(1, "ImageHasNoCommand")
            return None
        memory = float(spec.get("properties", {}).get("resources", {}).get("requests", {}).get("memoryInGB", 1))
        self.cap_log(name)
        try:
            files = self.host.container_files(self.group, name, str(spec.get("properties", {}).get("image", "")))
            process = await sandbox.spawn(
                command, self.env_for(spec), files, self.log_path(name), memory, self.marker, self.host.use_bwrap,
                self.host.discard,
            )  # fmt: skip
        except OSError as error:
            run.event("Failed", f"Error: failed to start container {name}: {error.strerror}", "Warning")
            run.terminated(128, "ContainerCannotRun")
            return None
        run.previous = run.current if run.current.get("state") == "Terminated" else run.previous
        run.current = {"state": "Running", "detailStatus": "", "startTime": now_iso()}
        run.event("Started", f"Started container {name}")
        self.processes[name] = process
        return process

    def cap_log(self, container: str) -> None:
        path = self.log_path(container)
        with contextlib.suppress(OSError):
            if path.stat().st_size > LOG_CAP_BYTES:
                data = path.read_bytes()[-LOG_CAP_BYTES // 2 :]
                path.write_bytes(data)

    async def run(self, generation: int, after_reboot: bool) -> None:
        group = self.group
        try:
            await self.provision(after_reboot)
            if generation != self.generation or group.provisioning_state == "Failed":
                return
            await self.supervise(generation)
        except asyncio.CancelledError:
            raise
        finally:
            if generation == self.generation:
                self.save()

    async def provision(self, after_reboot: bool) -> None:
        group = self.group
        timings = self.host.timings
        slow = sum(float(f.get("seconds", 5)) for f in group.faults if f["fault"] == Fault.SLOW)
        loop = asyncio.get_running_loop()
        # The containers start `provisioning_seconds` (+ a slow fault's delay) after the PUT: both waits end at
        # instants counted from when provisioning began, so the emulator's own work in between (saving the group,
        # its events, emptying volumes) takes part of that time instead of adding to it.
        half, phase_began = timings.provisioning_seconds / 2, loop.time()
        if not after_reboot:
            group.provisioning_state, group.state = "Pending", "Pending"
            self.save()
            await asyncio.sleep(max(0.0, phase_began + half + slow - loop.time()))
            group.provisioning_state = "Creating"
            phase_began += half + slow
        if any(f["fault"] == Fault.CAPACITY for f in group.faults) and not after_reboot:
            message = (
                f"The requested resource is not available in the location '{group.location}' at this moment. "
                "Please retry with a different resource request or in another location. "
                f"Resource requested: '{group.cores:g}' CPU 'Linux' OS"
            )
            group.group_event("InsufficientCapacity.", message, "Warning")
            group.provisioning_state, group.state, group.failure = "Failed", "Failed", message
            return
        if group.volumes and self.cannot_mount():
            return
        for spec in group.spec_containers():
            run = group.containers.setdefault(spec["name"], ContainerRun(spec["name"]))
            image = spec.get("properties", {}).get("image", "")
            run.event("Pulling", f'pulling image "{image}"')
            run.event("Pulled", f'Successfully pulled image "{image}"')
        self.host.reset_volumes(group)
        await asyncio.sleep(max(0.0, phase_began + half - loop.time()))
        for spec in group.spec_containers(init=True):
            if not await self.run_init_container(spec):
                return

    def cannot_mount(self) -> bool:
        """Fail the group's provisioning when its volumes cannot be given to it: without bubblewrap (a plain
        process cannot see a private mount path), or with secret volumes whose files the emulator lost in a
        restart (it never stores them). ACI reports a volume it cannot mount as a FailedMount event."""
        group = self.group
        mounts = volumes.mounting([*group.spec_containers(init=True), *group.spec_containers()])
        message = None
        if mounts and not self.host.use_bwrap:
            container, volume, path = mounts[0]
            message = (
                f"aciemu cannot mount volume '{volume}' at '{path}' in container '{container}': it runs without "
                "bubblewrap (--no-bwrap, or bwrap is not installed), and a plain process cannot see a private "
                "mount path. Install bubblewrap, or run groups without volumeMounts."
            )
        elif lost := self.host.missing_secrets(group):
            message = (
                f"The files of secret volume '{lost[0]}' are gone: aciemu keeps secret volumes in memory only and "
                "has restarted since the group was created. Delete the group and create it again."
            )
        if message is None:
            return False
        group.group_event("FailedMount", message, "Warning")
        group.provisioning_state, group.state, group.failure = "Failed", "Failed", message
        return True

    async def run_init_container(self, spec: dict[str, Any]) -> bool:
        """Run one init container to completion; whether it succeeded. A failing one is restarted, with back-off,
        unless the group's policy is Never (the init containers' policy is OnFailure under Always and OnFailure,
        Never under Never: ACI's init container article); meanwhile the group stays Pending, its containers
        Waiting. Under Never the group fails and its containers never start."""
        group = self.group
        run = group.init_containers.setdefault(spec["name"], ContainerRun(spec["name"]))
        while True:
            process = await self.launch(spec, run)
            code = await process.wait() if process is not None else 1
            self.processes.pop(spec["name"], None)
            if run.current.get("state") == "Running":
                run.terminated(code, "Completed" if code == 0 else "Error")
            if code == 0:
                return True
            if group.restart_policy == "Never":
                group.provisioning_state, group.state = "Failed", "Failed"
                group.failure = f"init container {spec['name']} exited with {code}"
                return False
            run.event("BackOff", "Back-off restarting failed container", "Warning")
            self.save()
            delay = RESTART_BACKOFF_SECONDS[min(run.restart_count, len(RESTART_BACKOFF_SECONDS) - 1)]
            await asyncio.sleep(delay * self.host.timings.restart_backoff_scale)
            run.restart_count += 1

    async def supervise(self, generation: int) -> None:
        group = self.group
        specs = {spec["name"]: spec for spec in group.spec_containers()}
        waits: dict[str, asyncio.Task[int]] = {}
        for name, spec in specs.items():
            process = await self.launch(spec, group.containers[name])
            if process is not None:
                waits[name] = asyncio.ensure_future(process.wait())
        # Only now: ACI's Succeeded means the containers got into the running state (container-state.md), so a
        # GET never shows it with a container still waiting to start.
        group.provisioning_state, group.state = "Succeeded", "Running"
        self.save()
        for fault in group.faults:
            if fault["fault"] in {Fault.EVICT, Fault.KILL, Fault.VANISH}:
                asyncio.get_running_loop().create_task(self.life_fault(fault, generation))
        while waits:
            done, _ = await asyncio.wait(waits.values(), return_when=asyncio.FIRST_COMPLETED)
            for name in [n for n, task in waits.items() if task in done]:
                code = waits.pop(name).result()
                self.processes.pop(name, None)
                if generation != self.generation:
                    return
                run = group.containers[name]
                sandbox.kill_marked(self.marker, self.host.use_bwrap) if not self.processes else None
                run.terminated(code, "Completed" if code == 0 else "Error")
                if self.should_restart(code):
                    delay = RESTART_BACKOFF_SECONDS[min(run.restart_count, len(RESTART_BACKOFF_SECONDS) - 1)]
                    run.event("BackOff", "Back-off restarting failed container", "Warning") if code else None
                    self.save()
                    await asyncio.sleep(delay * self.host.timings.restart_backoff_scale)
                    if generation != self.generation:
                        return
                    run.restart_count += 1
                    process = await self.launch(specs[name], run)
                    if process is not None:
                        waits[name] = asyncio.ensure_future(process.wait())
                self.update_group_state()
                self.save()

    def should_restart(self, exit_code: int) -> bool:
        policy = self.group.restart_policy
        return policy == "Always" or (policy == "OnFailure" and exit_code != 0)

    def update_group_state(self) -> None:
        runs = list(self.group.containers.values())
        if any(run.current.get("state") != "Terminated" for run in runs):
            self.group.state = "Running"
        else:
            failed = any(run.current.get("exitCode") != 0 for run in runs)
            self.group.state = "Failed" if failed else "Succeeded"

    async def life_fault(self, fault: dict[str, Any], generation: int) -> None:
        await asyncio.sleep(float(fault.get("afterSeconds", 1.0)))
        if generation != self.generation or not self.host.holds(self.group):
            return
        kind = fault["fault"]
        if kind == Fault.VANISH:
            await self.host.delete_group(self.group)
            return
        if kind == Fault.EVICT:
            await self.evict(fault)
            return
        await self.stop_processes()
        for run in self.group.containers.values():
            if run.current.get("state") == "Running":
                run.event("Killing", f"Killing container {run.name}", "Warning")
                run.terminated(KILLED_EXIT_CODE, "Killed")
        self.update_group_state()
        self.save()

    async def evict(self, fault: dict[str, Any]) -> None:
        """A Spot eviction, showing only what ACI documents of one.

        The node is taken away, so the containers stop at once and wait for a new node: currentState Waiting and
        the group Pending (SupportArticles-docs "spot-containers-remain-waiting-state"). Then ACI starts the group
        again by itself, whatever its restart policy (azure-docs container-instances-spot-containers-overview,
        "Eviction policies"), and `restartCount` counts that restart. What ACI leaves undocumented is left out,
        not guessed, so that a client cannot come to rely on it: no event (ACI names none for an eviction), no
        exit code or Killing event for the lost run (`previousState` stays as it was), and provisioningState stays
        Succeeded (Unhealthy and Repairing are documented for a node that is down, not promised for an eviction).
        Only Spot groups are evicted, and only while a container runs.
        """
        group = self.group
        running = [run for run in group.containers.values() if run.current.get("state") == "Running"]
        if group.properties.get("priority") != Priority.SPOT or not running:
            return
        await self.stop_processes()
        moved = self.generation  # a stop, restart, start or delete meanwhile bumps it: then the move is off
        for run in running:
            run.current = {"state": "Waiting"}
        group.state = "Pending"
        group.faults = [f for f in group.faults if f is not fault]  # the new node runs the group undisturbed
        self.save()
        await asyncio.sleep(self.host.timings.eviction_restart_seconds)
        if moved != self.generation or not self.host.holds(group):
            return
        self.start_moved()

    def start_moved(self) -> None:
        """Start a group ACI moved to another node: a restart of each waiting container, as `restartCount` shows."""
        for run in self.group.containers.values():
            if run.current.get("state") == "Waiting":
                run.restart_count += 1
        self.start(after_reboot=True)

    async def reboot(self) -> None:
        """After an emulator restart: what was running was killed by 'platform maintenance'; start it again."""
        was_running = any(run.current.get("state") == "Running" for run in self.group.containers.values())
        if self.group.provisioning_state in TRANSITIONING:
            self.start()
            return
        if self.group.provisioning_state == "Succeeded" and self.group.state == "Pending":
            self.start_moved()  # saved while being moved after an eviction: the move goes on
            return
        if not was_running:
            return
        if self.host.missing_secrets(self.group):
            self.lose_secrets()
            return
        for run in self.group.containers.values():
            if run.current.get("state") == "Running":
                run.event("Killing", f"Killing container {run.name}: platform maintenance", "Warning")
                run.terminated(MAINTENANCE_EXIT_CODE, "Killed")
                run.restart_count += 1
        self.start(after_reboot=True)

    def lose_secrets(self) -> None:
        """After an emulator restart, a running group with a secret volume cannot be started again (its secret
        files were in the old emulator's memory only): what ran was killed as by platform maintenance, and the
        group ends Failed with a FailedMount event saying why, instead of running without its secrets."""
        for run in self.group.containers.values():
            if run.current.get("state") == "Running":
                run.event("Killing", f"Killing container {run.name}: platform maintenance", "Warning")
                run.terminated(MAINTENANCE_EXIT_CODE, "Killed")
        self.cannot_mount()
        self.group.provisioning_state = "Succeeded"  # the last operation (the create) had succeeded
        self.save()
