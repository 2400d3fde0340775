"""The old flat paths of modules that moved into their floor's package (docs/development.md, "Layout").

Each old path that users call (`import keras_disentangle.runtime`, `python -m keras_disentangle.export`)
is a shim of two lines that calls `forward`: an import gets the new module itself (the same object,
so names, state and monkeypatching are shared), a `python -m` runs the new module's command with the
same arguments. Both warn with a DeprecationWarning naming the new path (shown by default for `python
-m` and for imports from `__main__`, as Python shows DeprecationWarnings).
"""

from __future__ import annotations

import importlib
import runpy
import sys
import warnings


def forward(name: str, new: str) -> None:
    """Makes the shim module `name` (its `__name__`) stand for the module `new`.

    Imported, the shim's `sys.modules` entry becomes `new` (a package shim instead takes `new`'s public
    names and keeps its own folder, whose shims its submodules are). Run as `python -m`, it runs `new`
    as `__main__` with the command line as given (the tool exits there).
    """
    shim = sys.modules[name]
    old = shim.__spec__.name.removesuffix(".__main__")
    if name == "__main__":
        new = new.removesuffix(".__main__")
        # stacklevel 2: the shim, which is __main__, so the default filters show it.
        warnings.warn(f"python -m {old} is deprecated: run python -m {new}", DeprecationWarning, stacklevel=2)
        runpy.run_module(new, run_name="__main__", alter_sys=True)
        return
    # stacklevel 3: the code importing the shim (the import machinery's frames are skipped).
    warnings.warn(f"{old} is deprecated: import {new}", DeprecationWarning, stacklevel=3)
    module = importlib.import_module(new)
    if hasattr(shim, "__path__"):
        vars(shim).update({key: value for key, value in vars(module).items() if not key.startswith("_")})
    else:
        sys.modules[name] = module
