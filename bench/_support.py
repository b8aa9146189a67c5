"""What every benchmark shares: engines, runtimes, percentiles, machine facts and results."""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tether.bootstrap import build_runtime
from tether.logging import configure_logging
from tether.runtime import Runtime
from tether.settings import Settings
from tether.vault import generate_key

RESULTS_DIR = Path(__file__).parent / "results"
POSTGRES_URL_ENV = "TETHER_TEST_POSTGRES_URL"
BENCH_DATABASE = "tether_bench"


def available_engines() -> list[str]:
    """SQLite always; PostgreSQL when ``scripts/with-services`` has started one."""
    return ["sqlite", "postgresql"] if os.environ.get(POSTGRES_URL_ENV) else ["sqlite"]


def quiet_logging() -> None:
    """tether's real log pipeline (the access log is rendered per request), written nowhere."""
    import authlib.deprecate  # noqa: F401 - it adds an "always" filter on import; ours goes first

    warnings.filterwarnings("ignore", message=".*httpx module is deprecated")
    configure_logging(level="INFO", json_output=True)
    for handler in logging.getLogger().handlers:
        if handler.get_name() == "tether" and isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - lives for the process


@contextmanager
def bench_runtime(engine: str, *, public_base_url: str | None = None) -> Iterator[Runtime]:
    """A migrated, empty tether on a temporary SQLite file or a fresh PostgreSQL database.

    ``public_base_url`` is where :func:`tether_server` will serve the same database (the
    sandbox and the OAuth callback resolve against it)."""
    workdir = Path(tempfile.mkdtemp(prefix="tether-bench-"))
    admin = None
    try:
        if engine == "sqlite":
            url = f"sqlite:///{workdir / 'tether.db'}"
        elif engine == "postgresql":
            admin_url = os.environ[POSTGRES_URL_ENV]
            admin = create_engine(
                make_url(admin_url).set(drivername="postgresql+psycopg"),
                isolation_level="AUTOCOMMIT",
            )
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{BENCH_DATABASE}"'))
            url = (
                make_url(admin_url)
                .set(database=BENCH_DATABASE)
                .render_as_string(hide_password=False)
            )
        else:
            raise ValueError(f"unknown engine {engine!r}")
        settings = Settings(
            data_dir=workdir / "data",
            database_url=url,
            queue_url=f"sqlite:///{workdir / 'queue.db'}",
            secret_key=SecretStr("bench-secret-key-" + "x" * 16),
            vault_keys=[SecretStr(generate_key())],
            sandbox_enabled=False,
            log_json=True,
            **({"public_base_url": public_base_url} if public_base_url else {}),
        )
        runtime = build_runtime(settings)  # migrates
        try:
            yield runtime
        finally:
            runtime.db.dispose()
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(workdir, ignore_errors=True)


def server_version(runtime: Runtime) -> str:
    with runtime.db.read() as session:
        if runtime.db.sqlite:
            return "SQLite " + str(session.execute(text("select sqlite_version()")).scalar())
        return "PostgreSQL " + str(session.execute(text("show server_version")).scalar())


# ---------------------------------------------------------------------------- statistics
def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), ``q`` in [0, 100]."""
    if not sorted_values:
        return float("nan")
    rank = (len(sorted_values) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> Summary:
        ordered = sorted(samples_ms)
        return cls(
            n=len(ordered),
            mean=sum(ordered) / len(ordered),
            p50=percentile(ordered, 50),
            p95=percentile(ordered, 95),
            p99=percentile(ordered, 99),
            max=ordered[-1],
        )

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(self).items()}


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.ms``."""

    ms: float

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter_ns()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.ms = (time.perf_counter_ns() - self._start) / 1e6


# ---------------------------------------------------------------------------- machine, output
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int | str = "self") -> float:
    """The high-water mark of a process's resident memory (``VmHWM``: reset by exec, unlike
    ``ru_maxrss``, which Linux carries over from the parent); 0 when it says none."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout
        mem_total = memory.splitlines()[1].split()[1]
    except (OSError, IndexError):
        mem_total = "unknown"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem_total,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


# ---------------------------------------------------------------------------- a second process
SERVER_ENV = "TETHER_BENCH_SERVER"
SANDBOX_ADMIN_SECRET = "bench-sandbox-admin"


def settings_payload(settings: Settings) -> dict[str, Any]:
    """What another process needs to open the same tether (database, secrets, public URL)."""
    return {
        "data_dir": str(settings.data_dir),
        "database_url": settings.database_url,
        "queue_url": settings.queue_url,
        "public_base_url": settings.public_base_url,
        "secret_key": settings.secret_key.get_secret_value() if settings.secret_key else None,
        "vault_keys": [k.get_secret_value() for k in settings.vault_keys],
    }


def runtime_from_payload(payload: dict[str, Any]) -> Runtime:
    """The same tether as :func:`settings_payload` describes, in this process (not migrated)."""
    settings = Settings(
        data_dir=Path(payload["data_dir"]),
        database_url=payload["database_url"],
        queue_url=payload["queue_url"],
        public_base_url=payload["public_base_url"],
        secret_key=SecretStr(payload["secret_key"]),
        vault_keys=[SecretStr(k) for k in payload["vault_keys"]],
        sandbox_enabled=False,
        log_json=True,
        # One load generator on one address would be throttled as an anonymous client (the
        # OAuth callbacks) and as a busy member: the benchmarks measure tether, not the limits.
        rate_limit_anonymous=0,
        rate_limit_member=0,
        rate_limit_api_key=0,
    )
    return build_runtime(settings, migrate=False)


def bench_python(code: str, payload: dict[str, Any], **popen: Any) -> subprocess.Popen[bytes]:
    """``python -c code`` from the repository root with ``payload`` in ``TETHER_BENCH_SERVER``."""
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, **{SERVER_ENV: json.dumps(payload)})
    return subprocess.Popen([sys.executable, "-c", code], cwd=root, env=env, **popen)


def server_main() -> None:
    """Entry point of :func:`tether_server`'s process: tether + a sandbox on loopback."""
    import uvicorn

    from tether.bootstrap import create_app
    from tether.sandbox import SandboxConfig, create_sandbox_app
    from tether.sandbox.config import CLINICAL, INSURANCE, LAB, SourceConfig

    payload = json.loads(os.environ[SERVER_ENV])
    quiet_logging()
    runtime = runtime_from_payload(payload["settings"])
    volumes = payload.get("volumes", {})
    sources = tuple(
        SourceConfig(id=sid, name=name, type=kind, volume_resources=int(volumes.get(sid, 0)))
        for sid, name, kind in (
            ("sandbox-clinic", "Sandbox Clinic", CLINICAL),
            ("sandbox-insurer", "Sandbox Insurer", INSURANCE),
            ("sandbox-lab", "Sandbox Lab", LAB),
        )
    )
    app = create_app(runtime)  # sandbox_enabled=False: mount our own, sized for the benchmark
    settings = runtime.settings
    sandbox_app = create_sandbox_app(
        SandboxConfig(
            public_url=settings.sandbox_url,
            redirect_uris=[settings.callback_url],
            admin_secret=SANDBOX_ADMIN_SECRET,
            sources=sources,
        )
    )
    app.mount("/sandbox", sandbox_app)
    app.state.sandbox = sandbox_app.sandbox
    port = int(settings.public_base_url.rsplit(":", 1)[1])
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


@contextmanager
def tether_server(runtime: Runtime, *, volumes: dict[str, int] | None = None) -> Iterator[str]:
    """Serve ``runtime``'s database (with a sandbox mounted) from a separate process.

    ``volumes`` maps a sandbox source (``sandbox-clinic``, ``sandbox-lab``, ...) to the size of
    its ``<short>-volume`` patient. Yields the base URL once ``/healthz`` answers.
    """
    import httpx

    url = runtime.settings.public_base_url
    payload = {"settings": settings_payload(runtime.settings), "volumes": volumes or {}}
    process = bench_python(
        "import bench._support as s; s.server_main()",
        payload,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tether server exited with {process.returncode}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("tether server did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    from tether.testing.live_server import free_port as _free

    return _free()


@dataclass(frozen=True)
class BenchMember:
    tenant_id: str
    member_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_members(runtime: Runtime, count: int, *, prefix: str = "m") -> list[BenchMember]:
    """A tenant with ``count`` members, each with a member token valid for two hours."""
    from tether.accounts import members, tenants
    from tether.identity import member_tokens

    result = []
    with runtime.db.write() as session:
        tenant = tenants.create_tenant(
            session, name=f"Bench {prefix}", return_urls=["https://app.example.test/connected"]
        )
        for index in range(count):
            member, _ = members.ensure_member(
                session, tenant_id=tenant.id, external_id=f"{prefix}-{index}"
            )
            issued = member_tokens.issue_member_token(
                session,
                member_id=member.id,
                tenant_id=tenant.id,
                secret_key=runtime.secret_key,
                ttl=7200,
            )
            result.append(BenchMember(tenant.id, member.id, issued.token))
    return result


def connect_member(
    runtime: Runtime, base_url: str, member: BenchMember, source: str, patient: str
) -> tuple[int, int]:
    """Connect ``member`` to ``source`` through the real consent flow; ``(pk, epoch)``."""
    import httpx
    from sqlalchemy import select

    from tether.store.models import Connection
    from tether.testing.flow import connect

    with httpx.Client(base_url=base_url, timeout=60) as api:
        result = connect(api, member.headers, source, patient=patient)
    if result.status_code != "success":
        raise RuntimeError(f"connect failed: {result.status_code} {result.response.text[:300]}")
    with runtime.db.read() as session:
        conn = session.scalar(
            select(Connection).where(
                Connection.member_id == member.member_id, Connection.data_source_id == source
            )
        )
        assert conn is not None
        return conn.id, conn.grant_epoch


def run_per_engine(
    name: str,
    args: Any,
    bench_engine: Callable[[str, Any], dict[str, Any]],
    report: Callable[[dict[str, Any]], str],
    **targets: float,
) -> int:
    """Run ``bench_engine`` on each engine ``args.engine`` names (default: every available
    one), print each ``report``, and write the results with ``targets`` and the machine."""
    engines = args.engine or available_engines()
    quiet_logging()
    results = []
    for engine in engines:
        result = bench_engine(engine, args)
        print(report(result), "\n", flush=True)
        results.append(result)
    written = write_results(
        name,
        {
            "benchmark": name,
            **targets,
            "options": vars(args) | {"engine": engines},
            "machine": machine(),
            "results": results,
        },
    )
    print(f"results: {written}")
    return 0
