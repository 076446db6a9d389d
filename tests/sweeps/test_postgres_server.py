"""The scale-out set-up of docs/scale-out.md, section 5, on one machine: PostgreSQL (Debian's
`postgresql` package) as the backend store of an `mlflow server` with 2 workers bound to
127.0.0.1, a 4-job joblib sweep logging through it, then 4 processes promoting different model
versions at once. Nothing may be lost: every run with its metrics, every promotion, the aliases.

Slow (a database cluster, a server, 4 trainings). Needs the PostgreSQL server binaries
(`apt-get install -y postgresql`; looked up as /usr/lib/postgresql/*/bin) and the driver
(`pip install 'psycopg[binary]'`, in the `dev` extra; SQLAlchemy 2.1 maps `postgresql://` to
psycopg 3, psycopg2 would need `postgresql+psycopg2://`); skips with the reason otherwise. As root,
PostgreSQL runs as the `postgres` user (it refuses root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from registry.race import INITIAL_F1, RACE_VERSIONS, check_outcome, make_versions, run_workers

from ferops.tracking.server import free_port, server_command, start, stop

pytestmark = pytest.mark.slow

MODELS = ["fer_vgg", "fer_resnet"]
LOSSES = ["ce", "focal"]
NAME = "fer-pg-race"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("postgres")
    return Path(which).parent if which else None


def _as_postgres_user() -> list[str]:
    """Command prefix: PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return []
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no `postgres` user to run the database server as")
    runuser = shutil.which("runuser")
    if not runuser:
        pytest.skip("running as root and `runuser` is missing (needed to start PostgreSQL as `postgres`)")
    return [runuser, "-u", "postgres", "--"]


def _driver_scheme() -> str:
    """SQLAlchemy 2.1 maps plain `postgresql://` to psycopg 3; psycopg2 needs `postgresql+psycopg2://`."""
    import importlib.util

    if importlib.util.find_spec("psycopg"):
        return "postgresql"
    if importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2"
    pytest.skip("the MLflow server needs a PostgreSQL driver: pip install 'psycopg[binary]' (or psycopg2-binary)")


def psql(uri: str, sql: str) -> list[list[str]]:
    """Rows of a query, through the psql client (no Python driver needed here)."""
    plain = "postgresql://" + uri.split("://", 1)[1]
    out = subprocess.run(
        ["psql", plain, "-At", "-F", "\t", "-c", sql], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line]


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free 127.0.0.1 port with an empty `mlflow` database."""
    bindir = _pg_bin()
    if bindir is None or not (bindir / "initdb").exists():
        pytest.skip("PostgreSQL server binaries not found (apt-get update && apt-get install -y postgresql)")
    scheme = _driver_scheme()
    prefix = _as_postgres_user()
    root = Path(tempfile.mkdtemp(prefix="ferops-pg-"))  # not under pytest's tmp (mode 0700, root's)
    data, sock, log = root / "data", root / "sock", root / "postgres.log"
    sock.mkdir()
    if prefix:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()

    def pg(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120, check=check)

    try:
        pg(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off -c max_connections=200"
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "-t", "60", "start")
        pg(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow")
        yield f"{scheme}://postgres@127.0.0.1:{port}/mlflow"
    except subprocess.CalledProcessError as err:
        pytest.fail(f"{err.cmd}: {err.stderr or err.stdout}\n{log.read_text() if log.exists() else ''}")
    finally:
        if (data / "postmaster.pid").exists():
            pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_server(postgres, tmp_path) -> Iterator[str]:
    """`mlflow server` (2 workers, proxied artifacts under tmp_path) on the PostgreSQL store."""
    store = tmp_path / "server"
    store.mkdir()
    port = free_port()
    cmd = server_command(store, port=port, workers=2)
    cmd[cmd.index("--backend-store-uri") + 1] = postgres
    uri = f"http://127.0.0.1:{port}"
    try:
        proc = start(cmd, f"{uri}/health", store / "server.log", 180, cwd=store)
    except (RuntimeError, TimeoutError) as err:  # the message carries the server log's tail
        pytest.fail(str(err))
    try:
        yield uri
    finally:
        stop(proc, port)


def test_postgres_server_sweep_and_concurrent_promotion(
    pg_server, postgres, tmp_path, sweep_args, run_train, experiment_runs, monkeypatch, capsys
):
    uri = pg_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("FEROPS_REGISTRY_LOCK_DIR", str(tmp_path / "locks"))

    # 1. a 4-job joblib sweep, all 4 jobs at once, through the server
    args = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=4",
        f"model={','.join(MODELS)}",
        f"loss={','.join(LOSSES)}",
        *sweep_args,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    res = run_train(args, tmp_path, uri=uri, timeout=600, env={"FEROPS_REGISTRY_LOCK_DIR": str(tmp_path / "locks")})
    assert res.returncode == 0, res.output[-4000:]
    runs = experiment_runs(uri)
    parents = [r for r in runs if r.data.tags.get("ferops.sweep") == "true"]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 and len(runs) == 5, [r.info.run_name for r in runs]
    assert all(c.info.status == "FINISHED" for c in children) and parent.info.status == "FINISHED"
    assert sorted(int(c.data.tags["sweep.job_num"]) for c in children) == [0, 1, 2, 3]
    assert parent.data.tags["sweep.n_runs"] == "4" and parent.data.tags["sweep.n_jobs"] == "4"
    keys = [set(c.data.metrics) for c in children]
    assert all(k == keys[0] for k in keys) and {"val/macro_f1_best", "test/acc"} <= keys[0], keys  # no metric lost
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    for c in children:  # every logged step of a per-epoch metric is there
        assert len(client.get_metric_history(c.info.run_id, "val/macro_f1")) >= 1
    assert client.list_artifacts(children[0].info.run_id)  # artifacts went through the server

    # 2. 4 processes promote different versions at once
    run_id = children[0].info.run_id
    (initial,) = make_versions(client, NAME, run_id, f"runs:/{run_id}/config.yaml", [(INITIAL_F1, True)])
    from ferops.registry.promote import PROMOTE, promote

    assert promote(NAME, version=initial, client=client).action == PROMOTE
    racers = make_versions(client, NAME, run_id, f"runs:/{run_id}/config.yaml", RACE_VERSIONS)
    results = run_workers("promote", uri, NAME, racers, tmp_path / "race")
    summary = check_outcome(client, NAME, results, initial)
    versions = client.search_model_versions(f"name = '{NAME}'")
    assert len(versions) == 1 + len(RACE_VERSIONS)
    assert all(dict(v.tags).get("promotion.decision") for v in versions)  # every decision recorded

    # 3. straight from the database: the rows are there
    n_runs = int(psql(postgres, "SELECT count(*) FROM runs WHERE lifecycle_stage = 'active'")[0][0])
    db_aliases = {a: v for a, v in psql(postgres, f"SELECT alias, version FROM registered_model_aliases WHERE name = '{NAME}'")}
    assert n_runs == 5 and db_aliases == summary["aliases"], (n_runs, db_aliases)
    with capsys.disabled():
        print(f"\n  [postgres] {n_runs} runs; promotion race: {summary}")
