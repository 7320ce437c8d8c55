"""Local development tools: the `acibatch` CLI, its HTTP client, the local stack (devhost + aciemu) and the demo.

Never deployed: `.funcignore` keeps this package out of the Functions package, and `tests/test_layers.py` fails if
deployable code (`acibatch/`, the Functions layers) imports it.
"""
