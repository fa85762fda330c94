"""Generated parts of docs/architecture.md: the lists that must match the code.

``python -m synthdata.docs`` prints them; ``python -m synthdata.docs --write FILE`` replaces
every block between ``<!-- generated:NAME -->`` and ``<!-- end generated -->`` in FILE with
the current list. ``tests/test_docs.py`` fails when the committed document differs, so the
generators, gate presets and metrics it lists cannot drift from the registries.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from synthdata.errors import ConfigError

_BLOCK = re.compile(r"(<!-- generated:(?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- end generated -->)",
                    re.DOTALL)


def generators_table() -> str:
    from synthdata.models.registry import available_generators, generator_extras, generator_targets

    rows = ["| name | class | optional extra |", "|---|---|---|"]
    targets, extras = generator_targets(), generator_extras()
    for name in available_generators():
        rows.append(f"| `{name}` | `{targets[name]}` | {extras.get(name, '(core)')} |")
    return "\n".join(rows) + "\n"


def gate_presets_table() -> str:
    from synthdata.evaluate.gate import GATE_PRESETS

    rows = ["| preset | rules |", "|---|---|"]
    for name, rules in GATE_PRESETS.items():
        parts = []
        for metric, rule in rules.items():
            if isinstance(rule, dict):
                parts += [f"`{metric}` {'≤' if k == 'max' else '≥'} {v}" for k, v in rule.items()]
            else:
                parts.append(f"`{metric}` {rule}")
        rows.append(f"| `{name}` | {', '.join(parts)} |")
    return "\n".join(rows) + "\n"


def metrics_table() -> str:
    from synthdata.evaluate.metrics import METRIC_INFO

    direction = {True: "higher", False: "lower", None: "—"}
    rows = ["| metric | better | needs | meaning |", "|---|---|---|---|"]
    for info in METRIC_INFO.values():
        text = info.description.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{info.name}` | {direction[info.higher_is_better]} | "
                    f"{info.needs or '—'} | {text} |")
    return "\n".join(rows) + "\n"


GENERATED: dict[str, Callable[[], str]] = {
    "generators": generators_table,
    "gate_presets": gate_presets_table,
    "metrics": metrics_table,
}


def render(text: str, *, where: str = "document") -> str:
    """``text`` with every generated block replaced by the current list."""
    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in GENERATED:
            raise ConfigError(f"{where}: unknown generated block {name!r}; choose one of "
                              f"{sorted(GENERATED)}")
        return match.group(1) + GENERATED[name]() + match.group(4)

    return _BLOCK.sub(fill, text)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--write":
        path = Path(argv[1])
        path.write_text(render(path.read_text(encoding="utf-8"), where=str(path)),
                        encoding="utf-8")
        return 0
    if argv:
        print("usage: python -m synthdata.docs [--write FILE]", file=sys.stderr)
        return 2
    for name, make in GENERATED.items():
        print(f"<!-- generated:{name} -->\n{make()}<!-- end generated -->\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
