"""The lazy neonize imports.

Importing neonize (any of its modules, even a protobuf one) calls `logging.basicConfig` and runs
`uname`: configure logging first. The package only imports neonize lazily, inside functions and
through `_import`, so `import scheduler.drivers.neonize` stays cheap and side-effect free.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
import sys
import types
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


# Imported once by the forkserver that forks session hosts, so that every child shares them
# copy-on-write: everything `neonize.aioze.client` needs except the Go library (`neonize._binder`),
# whose runtime starts threads at load time and must therefore be loaded after the fork.
_SHARED = (
    "google.protobuf.message",
    "magic",
    "PIL.Image",
    "PIL.ImageSequence",
    "requests",
    "linkpreview",
    "segno",
    "neonize.proto.Neonize_pb2",
    "neonize.proto.waE2E.WAWebProtobufsE2E_pb2",
    "neonize.events",
    "neonize.builder",
    "neonize.exc",
    "neonize.utils",
    "neonize.download",
    "neonize.ext.interactive_message",
    "neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2",
    "neonize.proto.waConsumerApplication.WAConsumerApplication_pb2",
    "neonize.proto.waMsgApplication.WAMsgApplication_pb2",
    "neonize.aioze.preview.compose",
    "neonize.aioze.events",
    "tqdm",
)


def preload() -> None:
    """Import what a session host needs, short of the Go library.

    neonize's package `__init__` imports its synchronous client too, and with it the Go library:
    a bare package module in its place lets the submodules a session uses load on their own.
    """
    if "neonize" not in sys.modules:
        spec = importlib.util.find_spec("neonize")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("neonize is not installed")
        package = types.ModuleType("neonize")
        package.__path__ = list(spec.submodule_search_locations)
        package.__file__ = spec.origin
        sys.modules["neonize"] = package
    for name in _SHARED:
        _import(name)
    # neonize warns, once per process, that ffprobe is missing: the gateway builds its media itself.
    setattr(_import("neonize.utils.ffmpeg"), "_ffmpeg_checked", True)  # noqa: B010


def quiet_log_thread() -> None:
    """End the thread neonize's log module starts at import (a preloading parent must stay
    single-threaded); each session host installs its own log pipeline after the fork (`logpipe`)."""
    log = sys.modules.get("neonize.utils.log")
    if log is not None and log._thread.is_alive():
        log._log_queue.put(None)  # its worker loop's own sentinel
        log._thread.join()
