"""Tensor-parallel workers are spawned: each re-imports the main script. A script that builds the
engine at top level without `if __name__ == "__main__":` would start it again in every worker,
so it is refused up front with a message that says why."""

from __future__ import annotations

import ast
import sys

from allmos.errors import ConfigError

MESSAGE = (
    "{n} ranks start worker processes with the spawn method, which re-imports {script}; line {line} builds "
    'the engine at its top level, so every worker would too. Put that code under `if __name__ == "__main__":`'
)


def check_main_guard(world: int) -> None:
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    line = unguarded_main_line(script)
    if line is not None:
        raise ConfigError("tensor_parallel_size", MESSAGE.format(n=world, script=script, line=line))


def unguarded_main_line(script: str | None) -> int | None:
    """The line of the main script's top-level code that is running now, when it lies outside every
    `if __name__ == "__main__":` block (None when guarded, or when there is no script: -c, REPL)."""
    frame = sys._getframe(1)
    while frame is not None and not (
        frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__"
    ):
        frame = frame.f_back
    if frame is None or not script or frame.f_code.co_filename != script:
        return None
    try:
        with open(script, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError):
        return None
    guarded = [node for node in tree.body if isinstance(node, ast.If) and is_main_test(node.test)]
    line = frame.f_lineno
    return None if any(node.lineno <= line <= node.end_lineno for node in guarded) else line


def is_main_test(test: ast.expr) -> bool:
    if not isinstance(test, ast.Compare) or len(test.comparators) != 1:
        return False
    names = {ast.unparse(test.left), ast.unparse(test.comparators[0])}
    return names in ({"__name__", "'__main__'"}, {"__name__", '"__main__"'})
