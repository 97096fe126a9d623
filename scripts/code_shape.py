"""The size of the code a reader has to hold: the largest modules and functions of the packages.

Run: ``.venv/bin/python scripts/code_shape.py [--top N] [ROOT]``. Counts physical lines (a module's
whole file; a function from its ``def`` to its last line, decorators excluded) in the five package
folders, and prints the median module, the largest modules and the largest functions. The aims
(CONTRIBUTING.md): modules under about 400 lines, functions under about 60.
"""

from __future__ import annotations

import argparse
import ast
import statistics
from pathlib import Path

PACKAGES = ("features", "models", "training", "serving", "cli")


def shape(root: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    modules, functions = [], []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text()
            name = path.relative_to(root).as_posix()
            modules.append((len(text.splitlines()), name))
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    functions.append((lines, f"{name}::{node.name}"))
    return sorted(modules, reverse=True), sorted(functions, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=Path(__file__).resolve().parents[1], type=Path)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    modules, functions = shape(args.root)
    print(f"modules={len(modules)} median_lines={statistics.median(n for n, _ in modules):.0f}")
    print(
        f"modules over 400 lines: {sum(n > 400 for n, _ in modules)}; functions over 60 lines: "
        f"{sum(n > 60 for n, _ in functions)} of {len(functions)}"
    )
    print("largest modules:")
    for lines, name in modules[: args.top]:
        print(f"  {lines:5d}  {name}")
    print("largest functions:")
    for lines, name in functions[: args.top]:
        print(f"  {lines:5d}  {name}")


if __name__ == "__main__":
    main()
