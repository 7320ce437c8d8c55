#!/bin/sh
# acibatch's command wrapper: `/bin/sh /acibatch/bin/run CMD ARGS...` in the task container.
# It runs the user's command once per attempt, appends its streams to the shared volume for the sidecar and
# records the exit code. POSIX sh and builtins only (plus mv), so it works in any image that has /bin/sh.
root="${ACIBATCH_ROOT:-/acibatch}"
state="$root/state"
logs="$root/logs"

# ACI may restart a container that exited (even with restart policy Never): user code must never run twice,
# so a recorded exit code is simply replayed.
# The sidecar's own record (`127 not-started`, written when it gave up waiting for this wrapper) is replayed too:
# the attempt was already reported failed, so a wrapper that starts late must not run the command.
replay() {
    read -r code rest < "$state/exit" || code=1
    exit "$code"
}
if [ -f "$state/exit" ]; then
    replay
fi

# Stage-in failed (or never ran): the sidecar reports the failure; nothing of the user's may run.
staged=""
if [ -f "$state/stagein.json" ]; then
    read -r staged < "$state/stagein.json" || staged=""
fi
case "$staged" in
    *'"ok": true'*) ;;
    *) exit 0 ;;
esac

record() {
    printf '%s\n' "$1" > "$state/exit.tmp" && mv -f "$state/exit.tmp" "$state/exit"
}

child=""
on_stop() {
    # The container is being stopped: pass the signal on and record 143 (128 + SIGTERM) before we go.
    if [ -n "$child" ]; then
        kill -TERM "$child" 2>/dev/null
    fi
    record 143
    exit 143
}
trap on_stop TERM INT

# Started before but no exit recorded: the container was killed mid-run and ACI restarted it. Record the kill
# (128 + SIGKILL) rather than run the command a second time.
if [ -f "$state/started" ]; then
    record 137
    exit 137
fi
: > "$state/started"
# The sidecar writes its exit record, then looks for `started`; this wrapper writes `started`, then looks for the
# record: whichever order they run in, at least one sees the other. If the sidecar gave up just now, take the start
# back (the sidecar then reports the attempt as never started) and quit without running anything.
if [ -f "$state/exit" ]; then
    mv -f "$state/started" "$state/withdrawn"
    replay
fi

# A heartbeat for the sidecar, which cannot see this container's processes: a container killed outright
# stops touching it. It lasts as long as this wrapper (not until state/exit appears: the sidecar's own record may
# already be there while a command that got in first runs). Without `sleep` there is none (`off`).
# A failed or killed `sleep` (the command may kill every sleep it sees) must not end the heartbeat at once, or the
# sidecar would take a live command for a dead container; but a `sleep` that fails every time (no processes left
# to fork, the binary removed) would spin this loop at full CPU with no builtin to wait with, so after
# MAX_SLEEP_FAILURES failures in a row the heartbeat turns `off`, as without `sleep`.
wrapper=$$
MAX_SLEEP_FAILURES=12
if command -v sleep > /dev/null 2>&1; then
    (
        failures=0
        while kill -0 "$wrapper" 2> /dev/null; do
            : > "$state/alive"
            if sleep 5; then
                failures=0
            else
                failures=$((failures + 1))
                if [ "$failures" -ge "$MAX_SLEEP_FAILURES" ]; then
                    echo off > "$state/alive"
                    break
                fi
            fi
        done
    ) &
    beat=$!
else
    echo off > "$state/alive"
    beat=""
fi

if [ "$#" -eq 0 ]; then
    echo "acibatch: no command to run" >> "$logs/stderr.txt"
    record 127
    exit 127
fi

# In the background so the trap can run while the command does (a background command reads /dev/null).
"$@" >> "$logs/stdout.txt" 2>> "$logs/stderr.txt" &
child=$!
wait "$child"
code=$?
record "$code"
if [ -n "$beat" ]; then
    kill "$beat" 2> /dev/null
fi
exit "$code"
