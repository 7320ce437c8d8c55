"""Settings for every devhost the tests start (they inherit this process's environment)."""

import os

# Every orchestration episode the tests run through devhost resumes its worker session *and* replays the whole
# history, and the episode fails if the two answers differ (`devhost.sessions`). Tests that need another mode
# set it for their own devhost.
os.environ.setdefault("DEVHOST_ORCHESTRATION_SESSIONS", "verify")
