"""acibatch's task agent: stages inputs in, wraps the user's command, streams logs and uploads outputs.

It runs inside the container group of a task that uses files (or gets whole logs), as the `acibatch-stagein` init
container and the `acibatch-agent` sidecar. Standard library only, Python >= 3.9: the image has nothing else.
"""

VERSION = "1"
