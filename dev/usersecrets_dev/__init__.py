"""Development tooling, never shipped in the wheel or the image: the local control plane of
`make run`, the tests and the bench, and installing the chart into it.
"""
