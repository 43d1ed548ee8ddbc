"""Worker processes get their grace period to finish their work; then SIGKILL."""

from __future__ import annotations

from tests.integration.conftest import Slipway, wait_for


def worker_log(slipway: Slipway, release: str) -> str:
    return slipway.run(
        "logs", "--app", "hello", "--process", "worker", "--release", release, "-n", "200"
    ).stdout


def test_worker_finishes_its_job_when_stopped(running: Slipway) -> None:
    processes = {"web": "python app.py --port $PORT", "worker": "python worker.py"}
    app = running.make_app(
        processes=processes,
        scale={"web": 1, "worker": 1},
        env={"JOB_SECONDS": "2"},
        deploy={"stop_grace": "10s"},
    )
    running.deploy(app)
    wait_for(lambda: "job 1: started" in worker_log(running, "r1"), 10, "the first job")
    running.deploy(app)  # replaces the worker: SIGTERM mid-job
    running.ps("hello")  # until the old worker has stopped
    log = worker_log(running, "r1")
    term = log.index("SIGTERM: will exit after the current job")
    assert "finished" in log[term:], log
    assert "exiting cleanly" in log[term:], log
    assert "stopped (code 0)" in log, log


def test_stubborn_process_is_killed_after_the_grace_period(running: Slipway) -> None:
    stubborn = (
        "python -c 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        ' print("ignoring SIGTERM", flush=True); time.sleep(600)\''
    )
    processes = {"web": "python app.py --port $PORT", "worker": stubborn}
    app = running.make_app(
        processes=processes, scale={"web": 1, "worker": 1}, deploy={"stop_grace": "1s"}
    )
    running.deploy(app)
    running.deploy(app)
    running.ps("hello")  # until the old worker has stopped
    log = worker_log(running, "r1")
    assert "still running 1s after SIGTERM: sending SIGKILL" in log, log
    assert "stopped (signal SIGKILL)" in log, log
    assert [i["release"] for i in running.ps("hello") if i["process"] == "worker"] == ["r2"]


def test_an_app_of_workers_only_deploys_and_rolls_back(running: Slipway) -> None:
    app = running.make_app(
        processes={"worker": "python worker.py"}, scale={"worker": 2}, env={"JOB_SECONDS": "0.2"}
    )
    running.deploy(app)
    status = running.app_status("hello")
    assert status["url"] is None and status["current_release"] == "r1"
    assert [i["role"] for i in running.ps("hello")] == ["worker", "worker"]
    running.deploy(app)
    running.run("rollback", "--app", "hello")
    workers = running.ps("hello")
    assert {i["release"] for i in workers} == {"r1"} and len(workers) == 2
