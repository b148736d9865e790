"""A real one-node Slurm cluster for tests: munged, slurmctld and slurmd on this host, owned and stopped by us.

ppipe must tell a Slurm array task, a batch script and an ``srun`` step apart by what Slurm really puts in
their environment; a mock would only repeat our own guesses. So the ``slurm`` fixture starts the real
daemons (Debian's ``slurmctld slurmd slurm-client munge``) from a ``slurm.conf`` in a fresh temporary
directory, and tests submit to them with ``sbatch``::

    pytestmark = pytest.mark.xdist_group("slurm")

    def test_tasks(slurm: SlurmCluster, tmp_path: Path) -> None:
        job = slurm.sbatch("--array=0-3", f"--output={tmp_path}/%a.out", "--wrap", "ppipe ...")
        assert [(r.state, r.exit_code) for r in slurm.wait(job)] == [("COMPLETED", "0:0")] * 4

Anything else that talks to the cluster (ppipe itself, ``srun``) needs ``env=slurm.env`` (``SLURM_CONF``).

One cluster per test session, however many xdist workers: every Slurm test module is marked
``pytest.mark.xdist_group("slurm")`` and the suite runs with ``--dist loadgroup``, so all of them land
on one worker, which starts the cluster once, while the other worker goes on with the rest of the
suite. A file lock instead would make the second worker that asks for the cluster wait for the first
worker's whole session to end (the fixture is session-scoped), or start and stop a cluster per test.

Two test sessions on one host (two worktrees, say) do not meet either: each cluster asks the kernel
for two free ports and keeps everything (state, spool, pid and log files) in its own directory; only
munged is shared, and it is reused when one is running. A session that died without stopping its
cluster leaves a registry entry behind (``REGISTRY``, one file per live cluster, held under ``flock``
while it lives): the next cluster to start kills every process still carrying that cluster's
``SLURM_CONF``, the daemons, the slurmstepds and the jobs alike.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

#: Without these the fixture skips; anything else missing is a failure, not a skip.
BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo", "munged")
#: One file per live cluster, naming its directory; see the module docstring.
REGISTRY = Path(tempfile.gettempdir()) / "ppipe-slurm-clusters"
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run/munge")
#: Job states after which Slurm will not run the job (or task) again by itself.
FINAL_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED"}
)


def unavailable() -> str | None:
    """Why no cluster can be started here, or None: the one reason the fixture may skip rather than fail."""
    if os.geteuid() != 0:
        return "a real Slurm cluster needs root (slurmd runs jobs as their submitter)"
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        needed = "apt-get install slurmctld slurmd slurm-client munge"
        return f"Slurm or munge is not installed (missing {', '.join(missing)}): {needed}"
    return None


@dataclass(frozen=True)
class JobRecord:
    """One record of ``scontrol show job``: a plain job, or one task of an array."""

    job_id: int
    array_task_id: int | None
    state: str
    exit_code: str
    fields: dict[str, str] = field(repr=False)


def parse_show_job(text: str) -> list[JobRecord]:
    """Reads ``scontrol -o show job``: one line a record, ``Key=Value`` words, where a value may hold spaces."""
    records = []
    for line in text.splitlines():
        fields: dict[str, str] = {}
        key = None
        for word in line.split(" "):
            name, eq, value = word.partition("=")
            if eq and name and (name[0].isupper() or "/" in name or ":" in name):
                key = name
                fields[key] = value
            elif key is not None:
                fields[key] += " " + word
        if "JobId" not in fields:
            continue
        task = fields.get("ArrayTaskId", "")
        records.append(
            JobRecord(
                job_id=int(fields["JobId"]),
                array_task_id=int(task) if task.isdigit() else None,
                state=fields.get("JobState", ""),
                exit_code=fields.get("ExitCode", ""),
                fields=fields,
            )
        )
    return records


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError as error:
        return f"--- {path}: {error}"
    return f"--- {path} (last {len(text)} lines)\n" + "\n".join(text)


def _processes_with_env(entry: bytes) -> list[int]:
    """Every process whose environment holds ``entry`` (``SLURM_CONF=...``): all a cluster started, jobs too."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                if entry in handle.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def kill_leftovers() -> list[str]:
    """Kills what clusters of dead test sessions left running; returns their directories, for the log."""
    REGISTRY.mkdir(exist_ok=True)
    cleaned = []
    for entry in REGISTRY.iterdir():
        if entry.name.startswith("."):
            continue  # still being written
        try:
            handle = open(entry)  # noqa: SIM115 - closed below, whichever way
        except FileNotFoundError:
            continue  # cleaned by another session meanwhile
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live session's cluster
            handle.seek(0)
            root = handle.read().strip()
            if root:
                _kill_all(_processes_with_env(f"SLURM_CONF={root}/slurm.conf".encode()))
                cleaned.append(root)
            entry.unlink(missing_ok=True)
    return cleaned


def _other_clusters_live(own: IO[str] | None) -> bool:
    """Whether a cluster of another session is up (its registry entry locked), and may be using our munged."""
    for entry in REGISTRY.iterdir() if REGISTRY.is_dir() else ():
        if entry.name.startswith(".") or (own is not None and entry.name == Path(own.name).name.lstrip(".")):
            continue
        try:
            handle = open(entry)  # noqa: SIM115 - closed below, whichever way
        except FileNotFoundError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
    return False


class SlurmCluster:
    """munged (unless one runs already), slurmctld and slurmd for one ``slurm.conf`` under ``root``.

    Use it as a context manager: it is up (the node idle) inside, and down after, or it says which
    process would not go.
    """

    def __init__(self, root: Path, cpus: int = 8, kill_wait: int = 5, start_timeout: float = 30) -> None:
        self.root = root
        self.conf = root / "slurm.conf"
        self.cpus = cpus
        self.kill_wait = kill_wait
        self.start_timeout = start_timeout
        self.node = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
        #: What every Slurm client (and ppipe under test) needs to reach this cluster, over os.environ.
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        #: The pids of the daemons this cluster started (munged only if none ran before).
        self.daemons: dict[str, int] = {}
        self._registry: IO[str] | None = None

    # -- the cluster's life -------------------------------------------------------------------------

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        kill_leftovers()
        self._register()
        self._start_munge()
        self.write_conf()
        self._daemon("slurmctld", ["slurmctld", "-c", "-i", "-f", str(self.conf)], self.root / "slurmctld.pid")
        self._daemon("slurmd", ["slurmd", "-f", str(self.conf)], self.root / "slurmd.pid")
        self._wait_idle()

    def stop(self) -> None:
        """Ends the jobs, then the daemons by pid; raises if any of them outlives SIGKILL's grace."""
        if _alive(self.daemons.get("slurmctld", 0)):
            self.run("scancel", "--full", "--user", "root", check=False, timeout=10)
        stubborn = []
        if _other_clusters_live(self._registry):
            self.daemons.pop("munged", None)  # theirs now too: left running, and reused by the next session
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.daemons.pop(name, 0)
            if not _alive(pid):
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                stubborn.append(f"{name} (pid {pid})")
        strays = [pid for pid in _processes_with_env(f"SLURM_CONF={self.conf}".encode()) if _alive(pid)]
        _kill_all(strays)
        if self._registry is not None:
            handle = self._registry
            self._registry = None
            (REGISTRY / Path(handle.name).name.lstrip(".")).unlink(missing_ok=True)
            handle.close()
        if stubborn:
            raise RuntimeError(f"Slurm daemons ignored SIGTERM for 15 s and were killed: {', '.join(stubborn)}")

    def _register(self) -> None:
        REGISTRY.mkdir(exist_ok=True)
        # Locked and written under a hidden name first, so that no other session ever sees it unlocked.
        name = f"{os.getpid()}-{id(self)}"
        handle = open(REGISTRY / f".{name}", "w")  # noqa: SIM115 - held open while the cluster lives
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(str(self.root))
        handle.flush()
        os.rename(REGISTRY / f".{name}", REGISTRY / name)
        self._registry = handle

    def _start_munge(self) -> None:
        """Reuses a working munged; otherwise starts one as the ``munge`` user, as Debian's service would."""
        if subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0:
            return
        munge = pwd.getpwnam("munge")
        if not MUNGE_KEY.exists():
            maker = shutil.which("mungekey") or shutil.which("create-munge-key")
            if maker is None:
                raise RuntimeError(f"{MUNGE_KEY} is missing, and neither mungekey nor create-munge-key is installed")
            subprocess.run([maker, "--create"] if maker.endswith("mungekey") else [maker], check=True)
            os.chown(MUNGE_KEY, munge.pw_uid, munge.pw_gid)
            MUNGE_KEY.chmod(0o600)
        for directory in (MUNGE_RUN, Path("/var/log/munge"), Path("/var/lib/munge")):
            directory.mkdir(mode=0o755, exist_ok=True)
            os.chown(directory, munge.pw_uid, munge.pw_gid)
        # --force: a socket or lock left by a munged that died must not stop the new one. Its own files stay
        # where Debian puts them, which the munge user may write (our directory is root's alone).
        argv = ["munged", "--force", f"--pid-file={MUNGE_RUN / 'munged.pid'}"]
        # Not this cluster's SLURM_CONF: another session may come to use this munged, and must not count it
        # among the leftovers of ours.
        self._daemon("munged", argv, MUNGE_RUN / "munged.pid", user="munge", env=dict(os.environ))
        deadline = time.monotonic() + 10
        while subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"munged does not answer\n{_tail(Path('/var/log/munge/munged.log'))}")
            time.sleep(0.1)

    def _daemon(
        self, name: str, argv: list[str], pidfile: Path, user: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        """Starts a daemon that forks itself away, and learns its pid from its pid file.

        Daemons, not children: the suite counts a worker's children (tests of reaping do), and a cluster
        kept for the whole session must not show up among them.
        """
        pidfile.unlink(missing_ok=True)
        with open(self.root / f"{name}.stderr", "wb") as stderr:
            started = subprocess.run(
                argv, env=env or self.env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, user=user,
                cwd=self.root, timeout=30,
            )  # fmt: skip
        if started.returncode != 0:
            raise RuntimeError(f"{name} exited with status {started.returncode} while starting\n{self.logs()}")
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError, ValueError):
                pid = int(pidfile.read_text().split()[0])
                if _alive(pid):
                    self.daemons[name] = pid
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} wrote no pid to {pidfile} in 10 s\n{self.logs()}")
            time.sleep(0.05)

    def _wait_idle(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        state = ""
        while time.monotonic() < deadline:
            for name, pid in self.daemons.items():
                if not _alive(pid):
                    raise RuntimeError(f"{name} (pid {pid}) died while starting\n{self.logs()}")
            state = self.run("sinfo", "-h", "-N", "-o", "%T", check=False, timeout=10).stdout.strip()
            if state == "idle":
                return
            time.sleep(0.2)
        raise RuntimeError(f"the node is not idle after {self.start_timeout} s (sinfo: {state!r})\n{self.logs()}")

    def logs(self) -> str:
        """The tails of every daemon's log and stderr, for an error message."""
        names = ["slurmctld.log", "slurmd.log", "slurmctld.stderr", "slurmd.stderr", "munged.stderr"]
        return "\n".join(_tail(self.root / name) for name in names if (self.root / name).exists())

    # -- the configuration ---------------------------------------------------------------------------

    def write_conf(self) -> None:
        for directory in ("state", "spool"):
            (self.root / directory).mkdir(exist_ok=True)
        hardware = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
        memory = next((w.split("=")[1] for w in hardware.split() if w.startswith("RealMemory=")), "1000")
        lines = {
            "ClusterName": "ppipetest",
            "SlurmctldHost": f"{self.node}(127.0.0.1)",
            # Ports of our own, free right now: a host's own Slurm, or another session's cluster, is left be.
            "SlurmctldPort": str(_free_port()),
            "SlurmdPort": str(_free_port()),
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "CredType": "cred/munge",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "SwitchType": "switch/none",
            "MpiDefault": "none",
            "MailProg": "/bin/true",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core",
            "ReturnToService": "2",
            "StateSaveLocation": str(self.root / "state"),
            "SlurmdSpoolDir": str(self.root / "spool"),
            "SlurmctldPidFile": str(self.root / "slurmctld.pid"),
            "SlurmdPidFile": str(self.root / "slurmd.pid"),
            "SlurmctldLogFile": str(self.root / "slurmctld.log"),
            "SlurmdLogFile": str(self.root / "slurmd.log"),
            "SlurmctldDebug": "info",
            "SlurmdDebug": "info",
            "JobCompType": "jobcomp/none",
            "AccountingStorageType": "accounting_storage/none",
            "JobAcctGatherType": "jobacct_gather/none",
            # Finished jobs stay in `scontrol show job` for the test to read.
            "MinJobAge": "3600",
            "MaxArraySize": "100001",
            "MaxJobCount": "200000",
            # A job's processes get SIGTERM, then SIGKILL after this many seconds (Slurm's default: 30).
            "KillWait": str(self.kill_wait),
            "SchedulerParameters": "sched_interval=1,batch_sched_delay=0,sched_min_interval=0",
            "SchedulerTimeSlice": "5",
            "SlurmdTimeout": "300",
            "InactiveLimit": "0",
            # More CPUs than the machine has, so that an array of tiny tasks runs at once on two cores.
            "SlurmdParameters": "config_overrides",
        }
        text = "".join(f"{key}={value}\n" for key, value in lines.items())
        text += (
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} Boards=1 SocketsPerBoard=1"
            f" CoresPerSocket={self.cpus} ThreadsPerCore=1 RealMemory={memory} State=UNKNOWN\n"
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES\n"
        )
        self.conf.write_text(text)

    # -- what tests do with it -------------------------------------------------------------------------

    def run(
        self, *args: str, check: bool = True, timeout: float = 30, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Runs a Slurm client (``sbatch``, ``squeue``, ``scontrol``, ``scancel``...) against this cluster."""
        result = subprocess.run(
            list(args),
            env=self.env,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited with {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def sbatch(self, *args: str, cwd: Path | None = None) -> int:
        """Submits a job (``sbatch --parsable`` plus ``args``) and returns its id (an array's job id)."""
        argv = ["sbatch", "--parsable", *args]
        if cwd is not None:
            argv.insert(1, f"--chdir={cwd}")
        return int(self.run(*argv).stdout.strip().split(";")[0])

    def show_job(self, job_id: int) -> list[JobRecord]:
        """``scontrol show job``: one record a plain job, one an array task (pending tasks may share one)."""
        records = parse_show_job(self.run("scontrol", "-o", "show", "job", str(job_id)).stdout)
        return sorted(records, key=lambda r: (r.array_task_id is None, r.array_task_id or 0, r.job_id))

    def wait(self, job_id: int, timeout: float = 60) -> list[JobRecord]:
        """Waits until no task of ``job_id`` is pending, running or completing; returns every task's record."""
        deadline = time.monotonic() + timeout
        while True:
            queued = self.run("squeue", "-h", "-j", str(job_id), "--array", "-o", "%i %T %r", check=False)
            if queued.returncode == 0 and not queued.stdout.strip():
                records = self.show_job(job_id)
                if all(record.state in FINAL_STATES for record in records):
                    return records
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not finished after {timeout} s:\n{queued.stdout}\n{self.logs()}")
            time.sleep(0.2)
