"""The score of a mutmut run, per module, from the results it left in ./mutants; and each
surviving mutant, marked with its explanation from hack/mutation_survivors.txt if it has one.

Run by hack/mutation.sh in build/mutation. Exits 1 if a mutant survived unexplained."""

from __future__ import annotations

import fnmatch
import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

EXPLAINED = Path(__file__).with_name("mutation_survivors.txt")


def explanations() -> dict[str, str]:
    """mutant name (or a glob of names) -> why it is left alive ("name: reason" lines; #
    starts a comment)."""
    found: dict[str, str] = {}
    for line in EXPLAINED.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, why = line.partition(":")
            found[name.strip()] = why.strip()
    return found


def main(seconds: str) -> int:
    explained = explanations()
    by_module: dict[str, Counter[str]] = {}
    survivors: list[str] = []
    for meta in sorted(Path("mutants/src").rglob("*.py.meta")):
        module = str(meta.relative_to("mutants/src"))[: -len(".py.meta")].replace("/", ".")
        results = json.loads(meta.read_text())["exit_code_by_key"]
        counts = by_module.setdefault(module, Counter())
        for name, code in sorted(results.items()):
            status = status_by_exit_code[code]
            counts[status] += 1
            if status != "killed":
                survivors.append(f"{status}: {name}")
    print(f"{'module':32} {'killed':>7} {'total':>6}  other")
    total: Counter[str] = Counter()
    for module, counts in by_module.items():
        if not counts:
            continue
        total += counts
        others = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s != "killed")
        print(f"{module:32} {counts['killed']:>7} {sum(counts.values()):>6}  {others}")
    print(f"{'all':32} {total['killed']:>7} {total.total():>6}  in {seconds} s")
    unexplained = 0
    for line in survivors:
        name = line.partition(": ")[2]
        why = next((w for p, w in explained.items() if fnmatch.fnmatchcase(name, p)), None)
        unexplained += why is None
        print(f"  {line}" + (f"  ({why})" if why else "  UNEXPLAINED"))
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
