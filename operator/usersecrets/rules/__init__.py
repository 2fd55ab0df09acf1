"""The pure rules: who owns a namespace, what references mean, which copies should exist, what
a status says, how a pod is patched and whether it is admitted.

No I/O, no clock of their own, no asyncio: every rule is a function of its arguments, unit-tested
without a cluster. The import contract in pyproject.toml keeps it that way.
"""
