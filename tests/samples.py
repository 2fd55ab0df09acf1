"""What the code under test added to the process's Prometheus metrics, written as /metrics
shows it: `{'{result="denied",reason="missing"}': 1.0}`, so a test states the names, labels
and values a dashboard or an alert reads, not the code's own constants."""

from __future__ import annotations

from prometheus_client import REGISTRY


def samples(name: str) -> dict[str, float]:
    """Every sample of `name` (e.g. `usersecrets_admissions_total`), by its labels."""
    return {
        "{" + ",".join(f'{label}="{value}"' for label, value in sample.labels.items()) + "}": (
            sample.value
        )
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name == name
    }


class Growth:
    """The samples of one metric that changed since this was made, and by how much."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.before = samples(name)

    def __call__(self) -> dict[str, float]:
        return {
            labels: value - self.before.get(labels, 0.0)
            for labels, value in samples(self.name).items()
            if value != self.before.get(labels, 0.0)
        }
