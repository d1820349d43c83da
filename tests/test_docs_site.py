"""The documentation: a README read in five minutes, and a site that builds without a warning
(a broken link, a page left out of the navigation, a snippet of the README that is gone)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250


def test_the_readme_stays_short() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move what is not the first five minutes to docs/"


def test_the_site_builds_strict(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "site" / "getting-started" / "index.html").read_text()
    assert "sandbox/instance/acme__shop1__sales/link" in page  # the README's walkthrough, included
    assert "--8&lt;--" not in page
