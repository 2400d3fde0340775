"""The import graph of the package, the converters and the two top-level tools, checked against floors.

    python tests/import_graph.py        (or `make graph`): prints the floors, then any broken rule; exit 1 if any

Every module stands on one floor (`FLOORS`, bottom first). A module may import modules of its own
floor or of floors below; an import of a higher floor (an arrow running back up) or an import cycle
fails, and so does a module that no floor names (a new module must be given a place). Every import
counts, including the ones inside functions: a lazy import is still a dependency. The graph is read
with `ast`, so nothing is imported and the check takes well under a second.
"""

from __future__ import annotations

import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ("keras_disentangle", "tfrecords", "train.py", "evaluate.py")
_K = "keras_disentangle."
# Bottom first: (floor, what stands there, its modules); `name.*` is a package with all its modules.
FLOORS = (
    ("foundation", "configs and the helpers every tool uses",
     ("keras_disentangle", _K + "configs.*", _K + "cli", _K + "progress", _K + "precision", _K + "moved")),
    ("data", "the data contract on disk and in memory, and its pictures",
     (_K + "data.*", _K + "synthetic.*", _K + "rundir")),
    ("models", "the networks", (_K + "models.*",)),
    ("losses", "pure loss functions", (_K + "losses",)),
    ("pose", "the keypoint estimator: no model code", (_K + "pose.*",)),
    ("serving", "trained runs loaded for inference, and their export: SavedModel, the photo graph, LiteRT",
     (_K + "serving.*",)),
    ("applications", "what a trained model is used for, and its front-ends", (_K + "apps.*",)),
    ("metrics", "evaluation", (_K + "metrics.*",)),
    ("training", "the trainers: they stand on the runtime, which never imports them",
     (_K + "training.*", _K + "reid.*")),
    ("tools", "commands that measure or drive the rest", (_K + "tools.*", "train", "evaluate")),
    ("converters", "dataset folders to TFRecords; the package never imports them", ("tfrecords.*",)),
    ("shims", "the old flat paths, deprecated: each forwards to its module's new home (`moved`)",
     tuple(_K + m for m in ("runtime", "export", "litert", "keypoints", "blazepose", "generate", "app",
                            "virtual_market", "visualize", "demo", "demo_timer", "loadtest")) + (_K + "bench.*",)),
)


def modules() -> dict[str, pathlib.Path]:
    """Dotted module name -> file, for every module of `SOURCES`."""
    found = {}
    for source in SOURCES:
        path = ROOT / source
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            parts = file.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return found


def imports(name: str, file: pathlib.Path, known) -> set[str]:
    """The modules of `known` that `file` (module `name`) imports, anywhere in its body."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from package import module` imports the module; `from module import name`, the module.
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names)
    return {target for target in found if target in known and target != name}


def floor_of(name: str) -> int | None:
    """The index in `FLOORS` of the floor naming `name` (itself, or a package holding it), or None."""
    for index, (_, _, members) in enumerate(FLOORS):
        for member in members:
            package = member.removesuffix(".*")
            if name == package or (member.endswith(".*") and name.startswith(package + ".")):
                return index
    return None


def problems(graph: dict[str, set[str]]) -> list[str]:
    """One line per module without a floor, per arrow running back up and per import cycle."""
    lines = [f"{name}: no floor names it (add it to FLOORS)" for name in sorted(graph) if floor_of(name) is None]
    for name in sorted(graph):
        for target in sorted(graph[name]):
            low, high = floor_of(name), floor_of(target)
            if low is not None and high is not None and high > low:
                lines.append(f"{name} ({FLOORS[low][0]}) imports {target} ({FLOORS[high][0]}): an arrow back up")
    state: dict[str, int] = {}  # 1 on the path being walked, 2 done

    def walk(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                lines.append("import cycle: " + " -> ".join(path[path.index(target):] + [name, target]))
            elif target not in state:
                walk(target, path + [name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [])
    return lines


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, file, known) for name, file in known.items()}


def _room(name: str) -> str:
    """A module's room as the docs show it: `data`, `train.py`, or `metrics/` for any module of that package."""
    first = name.removeprefix(_K).split(".")[0]
    if first == "tfrecords" or (ROOT / "keras_disentangle" / first).is_dir():
        return first + "/"
    return first + ".py" if first in ("train", "evaluate") else first


def floors_text(graph: dict[str, set[str]]) -> str:
    """The floors, top first, each with its rooms (modules, or packages as `name/`)."""
    lines = []
    for index in reversed(range(len(FLOORS))):
        name, what, _ = FLOORS[index]
        rooms = sorted({_room(m) for m in graph if floor_of(m) == index and m != "keras_disentangle"})
        lines.append(f"{index:2d} {name:<13}{', '.join(rooms)}\n   {'':<13}{what}")
    return "\n".join(lines)


def main() -> int:
    edges = graph()
    print(floors_text(edges))
    found = problems(edges)
    print(*found, sep="\n", file=sys.stderr)
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} imports: "
          + (f"{len(found)} problem(s)" if found else "no arrow back up, no cycle"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
