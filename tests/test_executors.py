"""The sweep executors' processes: local pool workers die with a SIGKILLed parent and stop at once
when the caller abandons the iteration, wait passively for work unless the environment says otherwise,
and SIGTERM shuts the local Ray down (then runs the previous handler). Real subprocesses, psutil."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest


def _descendants(pid: int):
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


WORKERS_SCRIPT = """
import time
from fractal_embeddings.executors import LocalExecutor

if __name__ == "__main__":
    for _ in LocalExecutor(2).imap_unordered(time.sleep, [(60,)] * 6):
        pass
"""


def test_killed_parent_takes_its_pool_workers_with_it(tmp_path):
    psutil = pytest.importorskip("psutil")
    script = tmp_path / "pool.py"
    script.write_text(WORKERS_SCRIPT)
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            children = [c for c in _descendants(p.pid) if "python" in c.name().lower()]
            if len(children) >= 2:
                break
            time.sleep(0.2)
        assert len(children) >= 2, "the pool did not start"
        time.sleep(3)  # the workers are up and sleeping in their tasks
        children = _descendants(p.pid)
        p.send_signal(signal.SIGKILL)
        p.wait()
        gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, [(c.pid, c.cmdline()[-3:]) for c in alive]
    finally:
        if p.poll() is None:
            p.kill()
        for c in children:
            with contextlib.suppress(psutil.Error):
                c.kill()


def test_abandoned_iteration_stops_the_workers_at_once():
    psutil = pytest.importorskip("psutil")
    from fractal_embeddings.executors import LocalExecutor

    def pool_workers():
        out = []
        for c in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if c.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(c.cmdline()):
                    out.append(c)
        return out

    before = {c.pid for c in pool_workers()}
    it = LocalExecutor(2).imap_unordered(time.sleep, [(0,), (30,), (30,), (30,)])
    next(it)
    workers = [c for c in pool_workers() if c.pid not in before]
    assert len(workers) == 2
    t0 = time.perf_counter()
    it.close()  # Ctrl+C or an error in the caller: the queued runs must not go on
    took = time.perf_counter() - t0
    try:
        assert took < 10, took
        gone, alive = psutil.wait_procs(workers, timeout=5)
        assert not alive
    finally:
        for w in workers:
            with contextlib.suppress(psutil.Error):
                w.kill()


def test_pool_workers_wait_passively_unless_the_environment_says_otherwise(monkeypatch):
    """Workers that share the cores sleep when idle (OMP_WAIT_POLICY=PASSIVE, set before they import
    torch); a value the caller set is kept."""
    from fractal_embeddings.executors import LocalExecutor

    for policy, want in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        if policy is None:
            monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
        else:
            monkeypatch.setenv("OMP_WAIT_POLICY", policy)
        ex = LocalExecutor(2)
        try:
            seen = list(ex.imap_unordered(os.getenv, [("OMP_WAIT_POLICY",), ("OMP_WAIT_POLICY",)]))
        finally:
            ex.close()
        assert seen == [want, want], policy


RAY_SCRIPT = """
import signal, sys, time

def previous(signum, frame):
    print("previous handler ran; restored:", signal.getsignal(signal.SIGTERM) is previous, flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, previous)
from fractal_embeddings.executors import RayExecutor

ex = RayExecutor(num_cpus=1)
print("ready", flush=True)
time.sleep(300)
"""


@pytest.mark.slow
def test_sigterm_shuts_the_local_ray_down_and_restores_the_previous_handler(tmp_path):
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("ray")
    script = tmp_path / "ray_driver.py"
    script.write_text(RAY_SCRIPT)
    env = {**os.environ, "RAY_DISABLE_IMPORT_WARNING": "1"}
    p = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    family = []
    try:
        seen = []
        for line in p.stdout:
            seen.append(line)
            if line.strip() == "ready":
                break
        assert seen and seen[-1].strip() == "ready", "".join(seen)
        family = _descendants(p.pid)
        assert family, "no Ray processes under the driver"
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=60)[0]
        assert "previous handler ran; restored: True" in out, out
        gone, alive = psutil.wait_procs(family, timeout=20)
        assert not alive, [c.cmdline()[:2] for c in alive]
    finally:
        if p.poll() is None:
            p.kill()
        for c in family:
            with contextlib.suppress(psutil.Error):
                c.kill()
