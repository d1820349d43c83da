"""The lazy neonize imports.

Importing neonize (any of its modules, even a protobuf one) calls `logging.basicConfig` and runs
`uname`: configure logging first. The package only imports neonize lazily, inside functions and
through `_import`, so `import scheduler.drivers.neonize` stays cheap and side-effect free.
"""

from __future__ import annotations

import importlib
import io
import os
from types import ModuleType


def _popen_read_and_closed(cmd: str, mode: str = "r", buffering: int = -1) -> io.StringIO:
    with _os_popen(cmd, mode, buffering) as pipe:
        return io.StringIO(pipe.read())


_os_popen = os.popen


def _import(name: str) -> ModuleType:
    # neonize's import leaks an `os.popen("uname -a")` pipe (utils/platform.py), whose
    # ResourceWarning would surface later wherever warnings are errors: close it at once instead.
    os.popen = _popen_read_and_closed  # type: ignore[assignment]
    try:
        return importlib.import_module(name)
    finally:
        os.popen = _os_popen


def _pb() -> ModuleType:
    return _import("neonize.proto.Neonize_pb2")


def _e2e() -> ModuleType:
    return _import("neonize.proto.waE2E.WAWebProtobufsE2E_pb2")
