"""Deployment recipes under deploy/: consistency of every recipe, and the TLS recipe run."""

from __future__ import annotations

import configparser
import contextlib
import functools
import importlib.util
import json
import operator
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from structfree_dask.jobs.schema import load_job, parse_job

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
README = DEPLOY / "README.md"
IMAGE = "structfree-dask:0.1.0"
JOB_PATH = "/etc/structfree-dask/job.yaml"
TLS_DIR = "/etc/structfree-dask/tls"
TLS_NAMES = {"ca": "ca.pem", "cert": "cert.pem", "key": "key.pem"}
BUILD_CMD = "docker build -f deploy/container/Dockerfile -t structfree-dask:0.1.0 ."
DASK = Path(sys.executable).with_name("dask")


# ----------------------------------------------------------------------------- helpers


@functools.cache
def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _entry_points() -> set[str]:
    return set(_pyproject()["project"]["scripts"])


def _subcommands() -> set[str]:
    from structfree_dask.cli import build_parser

    parser = build_parser()
    for action in parser._actions:  # argparse keeps subparsers here
        if action.choices and isinstance(action.choices, dict):
            return set(action.choices)
    raise AssertionError("the CLI has no subcommands")


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def _text_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _k8s(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d is not None]
    assert len(docs) == 1, f"{name}: expected one manifest"
    return docs[0]


def _daskcluster() -> dict[str, Any]:
    return _k8s("daskcluster.yaml")


def _container(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in pod_spec["containers"] if c["name"] == name]
    assert len(found) == 1, f"no container {name!r}"
    return found[0]


def _cron_pod_spec() -> dict[str, Any]:
    return _k8s("cronjob.yaml")["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _dockerfile_entrypoint() -> list[str]:
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if ln.startswith("ENTRYPOINT")]
    assert len(lines) == 1, "the Dockerfile needs exactly one ENTRYPOINT"
    return json.loads(lines[0].removeprefix("ENTRYPOINT").strip())


def _argv(container: dict[str, Any]) -> list[str]:
    """What a Kubernetes container runs: command (else the image's ENTRYPOINT) + args."""
    command = container.get("command") or _dockerfile_entrypoint()
    return list(command) + list(container.get("args") or [])


def _mount_source(pod_spec: dict[str, Any], container: dict[str, Any],
                  path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == path]
    assert len(mounts) == 1, f"{container['name']}: nothing mounted at {path}"
    volumes = [v for v in pod_spec.get("volumes", []) if v["name"] == mounts[0]["name"]]
    assert len(volumes) == 1, f"no volume {mounts[0]['name']!r}"
    return mounts[0], volumes[0]


def _flag_value(argv: list[str], flag: str) -> str | None:
    for i, tok in enumerate(argv):
        if tok == flag:
            return argv[i + 1]
        if tok.startswith(flag + "="):
            return tok.split("=", 1)[1]
    return None


@functools.cache
def _dask_flags(sub: str) -> frozenset[str]:
    out = subprocess.run([str(DASK), sub, "--help"], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return frozenset(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out))


def _readme_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def _logical_lines(block: str) -> list[str]:
    return [ln.strip() for ln in block.replace("\\\n", " ").splitlines() if ln.strip()]


def _readme_section(title: str) -> str:
    text = README.read_text()
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert m, f"deploy/README.md has no section {title!r}"
    return m.group(1)


def _load_slurm_cluster():
    spec = importlib.util.spec_from_file_location("deploy_slurm_cluster",
                                                  DEPLOY / "slurm" / "cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _address_parts(address: str) -> tuple[str, str, int]:
    m = re.fullmatch(r"(tcp|tls)://([^/:\s]+):(\d+)", address)
    assert m, address
    return m.group(1), m.group(2), int(m.group(3))


# ----------------------------------------------------------------------------- all files


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


def test_kubernetes_manifests_have_the_right_kinds() -> None:
    expected = {
        "daskcluster.yaml": ("kubernetes.dask.org/v1", "DaskCluster"),
        "cronjob.yaml": ("batch/v1", "CronJob"),
        "job-configmap.yaml": ("v1", "ConfigMap"),
    }
    assert {p.name for p in K8S.glob("*.y*ml")} == set(expected)
    for name, (api, kind) in expected.items():
        doc = _k8s(name)
        assert (doc["apiVersion"], doc["kind"]) == (api, kind), name
        assert doc["metadata"]["name"]


def test_entry_point_names_match_pyproject() -> None:
    assert _entry_points() == {"structfree-dask"}
    subs = _subcommands()
    assert {"run", "segment"} <= subs
    words = "|".join(sorted(subs))
    # A command: a name (possibly a path) containing "structfree" followed by a subcommand,
    # in shell text (not Python's "from structfree_dask.jobs.schema import") or in a YAML/JSON list.
    shell = re.compile(rf"(?<![\w/.:-])(?<!from )([\w./-]*structfree[\w.-]*)[ \t]+({words})\b")
    listed = re.compile(rf"[\"']([\w./-]*structfree[\w.-]*)[\"'],\s*[\"']({words})[\"']")
    used: set[str] = set()
    for path in _text_files():
        text = path.read_text()
        for m in [*shell.finditer(text), *listed.finditer(text)]:
            used.add(m.group(1).rsplit("/", 1)[-1])
    assert used == _entry_points()
    assert _dockerfile_entrypoint()[0] in _entry_points()
    assert _load_slurm_cluster().ENTRY_POINT in _entry_points()


def test_dask_flags_used_in_deploy_exist() -> None:
    commands: list[tuple[str, list[str]]] = []
    for block in _readme_blocks("bash"):
        for line in _logical_lines(block):
            m = re.match(r"(?:\S+=\S+\s+)*dask (scheduler|worker)\b(.*)", line)
            if m:
                commands.append((m.group(1), shlex.split(m.group(2).rstrip("& "))))
    dc = _daskcluster()["spec"]
    for role in ("scheduler", "worker"):
        argv = _argv(_container(dc[role]["spec"], role))
        assert argv[:2] == ["dask", role]
        commands.append((role, argv[2:]))
    assert {r for r, _ in commands} == {"scheduler", "worker"}
    for role, argv in commands:
        for tok in argv:
            if tok.startswith("--"):
                flag = tok.split("=", 1)[0]
                assert flag in _dask_flags(role), f"dask {role} has no {flag}"
    # The TLS recipe documents every TLS flag, for both roles.
    tls = _readme_section("TLS")
    for role in ("scheduler", "worker"):
        line = next(ln for ln in _logical_lines(tls) if ln.startswith(f"dask {role}"))
        for flag in ("--tls-ca-file", "--tls-cert", "--tls-key"):
            assert flag in line and flag in _dask_flags(role)
    assert "--protocol" in _dask_flags("scheduler")


# ----------------------------------------------------------------------------- container


def test_dockerfile_agrees_with_the_package() -> None:
    text = DOCKERFILE.read_text()
    version = _pyproject()["project"]["version"]
    assert IMAGE == f"structfree-dask:{version}"
    assert f'org.opencontainers.image.version="{version}"' in text
    assert BUILD_CMD in text and BUILD_CMD in README.read_text()
    assert _dockerfile_entrypoint() == ["structfree-dask"]
    base = re.search(r"^ARG BASE_IMAGE=(\S+)", text, flags=re.M).group(1)
    assert "cuda" in base and re.search(r"^FROM \$\{BASE_IMAGE\}", text, flags=re.M)
    user = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    # torch (a CUDA build) first, then the package with [cuda] and [s3] under a torch
    # constraint; both extras exist.
    runs = re.findall(r"^RUN (.*?)(?<!\\)\n(?!\s)", text + "\n", flags=re.M | re.S)
    torch_at = next(i for i, r in enumerate(runs) if "TORCH_SPEC" in r)
    pkg_at = next(i for i, r in enumerate(runs) if '".[cuda,s3]"' in r)
    assert torch_at < pkg_at
    assert "torch.version.cuda" in runs[torch_at]
    assert "--constraint" in runs[pkg_at]
    assert {"cuda", "s3"} <= set(_pyproject()["project"]["optional-dependencies"])
    assert re.search(r"^ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cu\d+$",
                     text, flags=re.M)
    for src in re.findall(r"^COPY (.+) \S+$", text, flags=re.M):
        for item in src.split():
            assert (ROOT / item).exists(), f"COPY {item}: not in the repository"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git"} <= set(ignored)


def test_every_image_is_the_built_one() -> None:
    dc = _daskcluster()["spec"]
    pods = [dc["scheduler"]["spec"], dc["worker"]["spec"], _cron_pod_spec()]
    images = [c["image"] for pod in pods for c in pod["containers"]]
    assert images and set(images) == {IMAGE}
    for path in _text_files():
        for tag in re.findall(r"structfree-dask:[0-9][\w.-]*", path.read_text()):
            assert tag == IMAGE, f"{path.relative_to(ROOT)}: {tag}"


# ----------------------------------------------------------------------------- Kubernetes


def test_daskcluster_has_gpu_workers_and_a_scheduler_service() -> None:
    dc = _daskcluster()
    name, spec = dc["metadata"]["name"], dc["spec"]
    worker = _container(spec["worker"]["spec"], "worker")
    assert isinstance(spec["worker"]["replicas"], int) and spec["worker"]["replicas"] >= 1
    # The CRD types resource quantities as strings.
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    args = _argv(worker)
    assert _flag_value(args, "--resources") == "GPU=1"
    assert _flag_value(args, "--nthreads") == "1"
    assert args[2] == "$(DASK_SCHEDULER_ADDRESS)"
    assert _flag_value(args, "--name") == "$(DASK_WORKER_NAME)"
    service = spec["scheduler"]["service"]
    assert service["selector"] == {"dask.org/cluster-name": name,
                                   "dask.org/component": "scheduler"}
    scheduler = _container(spec["scheduler"]["spec"], "scheduler")
    ports = {p["name"]: p["containerPort"] for p in scheduler["ports"]}
    assert ports == {"tcp-comm": 8786, "http-dashboard": 8787}
    assert {p["targetPort"] for p in service["ports"]} == set(ports)
    assert _flag_value(_argv(scheduler), "--port") == str(ports["tcp-comm"])


def test_daskcluster_matches_the_operator_crd() -> None:
    pytest.importorskip("dask_kubernetes")
    jsonschema = pytest.importorskip("jsonschema")
    import dask_kubernetes

    crd_path = (Path(dask_kubernetes.__file__).parent / "operator" / "deployment" / "helm"
                / "dask-kubernetes-operator" / "crds" / "daskcluster.yaml")
    if not crd_path.is_file():
        pytest.skip("this dask-kubernetes does not ship the DaskCluster CRD")
    crd = yaml.safe_load(crd_path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    jsonschema.validate(_daskcluster(), version["schema"]["openAPIV3Schema"])


def test_cronjob_runs_the_job_file_from_the_configmap() -> None:
    cron = _k8s("cronjob.yaml")
    assert len(cron["spec"]["schedule"].split()) == 5
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = _cron_pod_spec()
    assert pod["restartPolicy"] == "Never"
    assert len(pod["containers"]) == 1
    run = pod["containers"][0]
    assert _argv(run) == ["structfree-dask", "run", JOB_PATH]
    mount, volume = _mount_source(pod, run, JOB_PATH)
    configmap = _k8s("job-configmap.yaml")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert mount["subPath"] in configmap["data"] and mount["subPath"] == "job.yaml"
    # Exit status 2 (bad job file) is not retried.
    rules = cron["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
    assert any(r["action"] == "FailJob" and 2 in r["onExitCodes"]["values"] for r in rules)


def test_configmap_job_points_at_the_daskcluster_scheduler() -> None:
    dc = _daskcluster()
    name, spec = dc["metadata"]["name"], dc["spec"]
    job = parse_job(yaml.safe_load(_k8s("job-configmap.yaml")["data"]["job.yaml"]),
                    source="job-configmap.yaml", check_files=False)
    assert job.cluster.kind == "scheduler"
    scheme, host, port = _address_parts(job.cluster.address)
    assert host == f"{name}-scheduler" or host.startswith(f"{name}-scheduler.")
    comm = next(p for p in spec["scheduler"]["service"]["ports"] if p["name"] == "tcp-comm")
    assert port == comm["port"]
    scheduler = _container(spec["scheduler"]["spec"], "scheduler")
    worker = _container(spec["worker"]["spec"], "worker")
    env = {e["name"]: e["value"] for e in worker.get("env", [])}
    assert env.get("DASK_SCHEDULER_ADDRESS", f"tcp://{name}-scheduler:8786").split("://")[0] \
        == scheme
    assert _address_parts(env.get("DASK_SCHEDULER_ADDRESS", job.cluster.address))[2] == port
    if scheme == "tls":
        assert _flag_value(_argv(scheduler), "--protocol") == "tls"
        files = {"ca": job.cluster.tls_ca, "cert": job.cluster.tls_cert,
                 "key": job.cluster.tls_key}
        assert files == {k: f"{TLS_DIR}/{v}" for k, v in TLS_NAMES.items()}
        secrets = set()
        pods = [(spec["scheduler"]["spec"], scheduler), (spec["worker"]["spec"], worker),
                (_cron_pod_spec(), _cron_pod_spec()["containers"][0])]
        for pod, container in pods:
            _, volume = _mount_source(pod, container, TLS_DIR)
            secrets.add(volume["secret"]["secretName"])
            if container is not pods[2][1]:
                argv = _argv(container)
                assert _flag_value(argv, "--tls-ca-file") == files["ca"]
                assert _flag_value(argv, "--tls-cert") == files["cert"]
                assert _flag_value(argv, "--tls-key") == files["key"]
        assert len(secrets) == 1
    # Plates and records live in an object store that the workers and the client reach
    # with the same keys (one Secret, as environment); no volume is shared.
    assert job.plates and all(p.startswith("s3://") for p in job.plates)
    assert job.records.startswith("s3://")
    secrets = set()
    for pod, container in [(spec["worker"]["spec"], worker),
                           (_cron_pod_spec(), _cron_pod_spec()["containers"][0])]:
        secrets |= {e["secretRef"]["name"] for e in container.get("envFrom", [])}
        assert not any("persistentVolumeClaim" in v for v in pod.get("volumes", []))
    assert len(secrets) == 1
    assert f"kubectl create secret generic {secrets.pop()}" in README.read_text()


# ----------------------------------------------------------------------------- job files


JOB_FILES = sorted((DEPLOY / "jobs").glob("*.yaml")) + [DEPLOY / "slurm" / "job.yaml",
                                                         DEPLOY / "slurm" / "job-slurm.yaml"]


@pytest.mark.parametrize("path", JOB_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_example_job_files_are_valid(path: Path) -> None:
    job = load_job(path, check_files=False)
    assert job.plates and job.tasks


def test_example_job_files_cover_each_cluster() -> None:
    jobs = {p.stem: load_job(p, check_files=False) for p in (DEPLOY / "jobs").glob("*.yaml")}
    assert jobs["local"].cluster.kind == "local"
    tcp = jobs["scheduler-tcp"].cluster
    assert tcp.kind == "scheduler" and _address_parts(tcp.address)[:2] == ("tcp", "127.0.0.1")
    tls = jobs["scheduler-tls"].cluster
    assert tls.kind == "scheduler" and _address_parts(tls.address)[0] == "tls"
    assert (tls.tls_ca, tls.tls_cert, tls.tls_key) == tuple(
        f"{TLS_DIR}/{v}" for v in TLS_NAMES.values())


# ----------------------------------------------------------------------------- workstation


def _unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # systemd keys are case-sensitive
    cp.read_string((DEPLOY / "systemd" / name).read_text())
    return cp


def test_systemd_units_run_the_nightly_job() -> None:
    service = _unit("structfree-dask-nightly.service")
    assert service["Service"]["Type"] == "oneshot"
    argv = shlex.split(service["Service"]["ExecStart"])
    assert argv[0].startswith("/") and Path(argv[0]).name in _entry_points()
    assert argv[1:] == ["run", JOB_PATH]
    timer = _unit("structfree-dask-nightly.timer")
    assert timer["Timer"]["OnCalendar"]
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["Unit"] == "structfree-dask-nightly.service"
    assert timer["Install"]["WantedBy"] == "timers.target"


_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\d+(-\d+)?)(/\d+)?)*$")


def test_cron_line_runs_the_nightly_job_under_flock() -> None:
    text = (DEPLOY / "cron" / "structfree-dask.cron").read_text()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(lines) == 1
    fields = lines[0].split()
    limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    for field, (lo, hi) in zip(fields[:5], limits, strict=True):
        assert _CRON_FIELD.match(field), field
        assert all(lo <= int(n) <= hi for n in re.findall(r"\d+", field.split("/")[0]))
    argv = shlex.split(" ".join(fields[5:]))
    assert argv[:2] == ["flock", "-n"]
    assert Path(argv[3]).name in _entry_points()
    assert argv[4:6] == ["run", JOB_PATH]
    assert argv[6:] == [">>", argv[7], "2>&1"] and argv[7].endswith(".log")
    assert "%" not in lines[0]  # cron would turn it into a newline


# ----------------------------------------------------------------------------- SLURM


def test_slurm_cluster_script(tmp_path: Path) -> None:
    import py_compile

    py_compile.compile(str(DEPLOY / "slurm" / "cluster.py"), doraise=True,
                       cfile=str(tmp_path / "cluster.pyc"))
    mod = _load_slurm_cluster()
    args = mod.build_parser().parse_args(["job.yaml"])
    kw = mod.cluster_kwargs(args)
    assert kw["job_extra_directives"] == ["--gres=gpu:1"]
    assert kw["worker_extra_args"] == ["--resources", "GPU=1"]
    assert kw["processes"] == 1 and kw["cores"] == 1
    assert "protocol" not in kw and "security" not in kw
    assert any("MALLOC_TRIM_THRESHOLD_" in ln for ln in kw["job_script_prologue"])


def test_slurm_job_copy_names_the_scheduler(tmp_path: Path) -> None:
    mod = _load_slurm_cluster()
    original = load_job(DEPLOY / "slurm" / "job.yaml", check_files=False)
    data = mod.scheduled_job(DEPLOY / "slurm" / "job.yaml", "tcp://10.1.2.3:40123")
    copy = parse_job(data, source=str(tmp_path / "job.yaml"), base=tmp_path)
    assert copy.cluster.kind == "scheduler" and copy.cluster.address == "tcp://10.1.2.3:40123"
    assert (copy.plates, copy.tasks, copy.records) == (original.plates, original.tasks,
                                                       original.records)
    # Relative paths stay those of the original file wherever the copy is written.
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "job.yaml").write_text(
        "version: 1\nplates: [plates/*.zarr]\nsegment:\n"
        "  - {organelle: cyto, channels: [0, 1], model: weights/m.pth}\n"
        "  - {organelle: nuclei, zoo: zoo, cell_line: CL5}\n")
    (tmp_path / "tls").mkdir()
    tls = mod.tls_paths(tmp_path / "tls")
    assert tls == {k: str((tmp_path / "tls" / v).resolve()) for k, v in TLS_NAMES.items()}
    kw = mod.cluster_kwargs(mod.build_parser().parse_args(["x", "--tls-dir",
                                                           str(tmp_path / "tls")]))
    assert kw["protocol"] == "tls://"
    assert kw["security"].tls_worker_cert == tls["cert"]
    data = mod.scheduled_job(folder / "job.yaml", "tls://10.1.2.3:40123", tls)
    copy = parse_job(data, base="/elsewhere", check_files=False)
    original = load_job(folder / "job.yaml")
    assert (copy.plates, copy.tasks, copy.records) == (original.plates, original.tasks,
                                                       original.records)
    assert copy.cluster.tls_key == tls["key"]


def test_sbatch_script_runs_the_cluster_script_on_the_job_file() -> None:
    text = (DEPLOY / "slurm" / "nightly.sbatch").read_text()
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    directives = [ln for ln in lines if ln.startswith("#SBATCH ")]
    assert directives and all(re.match(r"#SBATCH --[a-z-]+=\S+$", d) for d in directives)
    first_command = next(i for i, ln in enumerate(lines) if ln and not ln.startswith("#"))
    assert all(lines.index(d) < first_command for d in directives)
    if shutil.which("bash"):
        subprocess.run(["bash", "-n", str(DEPLOY / "slurm" / "nightly.sbatch")], check=True)
    assert '"${1:-deploy/slurm/job.yaml}"' in text
    exec_line = next(ln for ln in lines if ln.startswith("exec python "))
    argv = shlex.split(exec_line)
    assert argv[2] == "deploy/slurm/cluster.py" and (ROOT / argv[2]).is_file()
    options = [a for a in argv[3:] if a not in ("$JOB", "$@")]
    args = _load_slurm_cluster().build_parser().parse_args(["deploy/slurm/job.yaml", *options])
    assert args.jobs >= 1


def test_slurm_cluster_settings_give_a_gpu_worker_job() -> None:
    pytest.importorskip("dask_jobqueue")
    from dask_jobqueue import SLURMCluster

    mod = _load_slurm_cluster()
    args = mod.build_parser().parse_args(["job.yaml", "--partition", "gpu"])
    with SLURMCluster(**mod.cluster_kwargs(args)) as cluster:
        script = cluster.job_script()
    assert "#SBATCH --gres=gpu:1" in script and "#SBATCH -p gpu" in script
    assert "--resources GPU=1" in script and "--nthreads 1" in script
    assert "export MALLOC_TRIM_THRESHOLD_=134217728" in script


# ----------------------------------------------------------------------------- TLS, run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(line: str, port: int, cwd: Path, log: Path) -> subprocess.Popen:
    argv = shlex.split(line.rstrip("& "))
    assert argv[0] == "dask"
    argv[0] = str(DASK)
    for i, tok in enumerate(argv):  # this test's free port instead of 8786; no dashboard
        if i and argv[i - 1] == "--dashboard-address":
            argv[i] = "127.0.0.1:0"
        elif tok == "8786":
            argv[i] = str(port)
        elif tok.endswith(":8786"):
            argv[i] = tok.removesuffix("8786") + str(port)
    with open(log, "wb") as out:
        return subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    pytest.fail(f"nothing listens on {port}:\n{log.read_text()}")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.timeout(180)
def test_tls_recipe_gives_a_cluster_for_the_example_job(tmp_path: Path) -> None:
    from distributed.security import Security

    from structfree_dask.runtime.cluster import make_client

    section = _readme_section("TLS")
    lines = [ln for b in re.findall(r"```bash\n(.*?)```", section, flags=re.S)
             for ln in _logical_lines(b)]
    openssl = [ln for ln in lines if ln.startswith("openssl ")]
    assert len(openssl) == 1, "the TLS section documents one certificate command"
    subprocess.run(openssl[0], shell=True, cwd=tmp_path, check=True, capture_output=True,
                   timeout=120)
    assert all((tmp_path / v).is_file() for v in TLS_NAMES.values())

    port = _free_port()
    sched_line = next(ln for ln in lines if ln.startswith("dask scheduler"))
    worker_line = next(ln for ln in lines if ln.startswith("dask worker"))
    n_workers = int(_flag_value(shlex.split(worker_line), "--nworkers") or 1)
    procs = []
    try:
        procs.append(_start(sched_line, port, tmp_path, tmp_path / "scheduler.log"))
        _wait_for_port(port, procs[0], tmp_path / "scheduler.log")
        procs.append(_start(worker_line, port, tmp_path, tmp_path / "worker.log"))

        # The example TLS job file, with this test's port and certificate files.
        data = yaml.safe_load((DEPLOY / "jobs" / "scheduler-tls.yaml").read_text())
        data["cluster"]["address"] = data["cluster"]["address"].replace(":8786", f":{port}")
        data["cluster"]["tls"] = {k: str(tmp_path / v) for k, v in TLS_NAMES.items()}
        job = parse_job(data, source="scheduler-tls.yaml", base=DEPLOY / "jobs")
        client = make_client(job.cluster)  # what run_job does
        try:
            client.wait_for_workers(n_workers, timeout=60)
            assert client.submit(operator.add, 1, 2).result(timeout=30) == 3
            workers = client.scheduler_info()["workers"]
            assert len(workers) == n_workers
            assert all(addr.startswith("tls://127.0.0.1:") for addr in workers)
        finally:
            client.close()

        # A client whose certificate the CA did not sign is refused.
        stranger = tmp_path / "stranger"
        stranger.mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                        "/CN=stranger", "-keyout", "key.pem", "-out", "cert.pem"],
                       cwd=stranger, check=True, capture_output=True, timeout=60)
        security = Security(tls_ca_file=str(tmp_path / "ca.pem"),
                            tls_client_cert=str(stranger / "cert.pem"),
                            tls_client_key=str(stranger / "key.pem"), require_encryption=True)
        from distributed import Client

        with pytest.raises(OSError):
            Client(job.cluster.address, security=security, timeout="3s")
    finally:
        for proc in reversed(procs):
            _stop(proc)
