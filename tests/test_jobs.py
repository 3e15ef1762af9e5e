"""The scheduler: one-off and periodic jobs in the app context, from config, in milliseconds."""

import threading
import time

import pytest

from chipper.jobs import name_of, scheduler_of


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_job_runs_once_after_its_delay_in_the_app_context(app):
    from flask import current_app

    ran = []
    started = time.monotonic()
    scheduler_of(app).after(0.05, lambda x: ran.append((x, current_app.name, time.monotonic())), 7)
    wait_until(lambda: ran)
    time.sleep(0.1)
    assert len(ran) == 1
    value, name, when = ran[0]
    assert (value, name) == (7, app.name)
    assert when - started >= 0.05


def test_jobs_run_in_the_order_they_are_due(app):
    ran = []
    scheduler = scheduler_of(app)
    # Far enough apart that a busy host (CI once took 0.1 s between these two lines) cannot
    # make the first one due before the second is even scheduled.
    scheduler.after(0.6, ran.append, "late")
    scheduler.after(0.02, ran.append, "early")
    wait_until(lambda: len(ran) == 2)
    assert ran == ["early", "late"]


def test_a_periodic_job_starts_with_the_first_request_and_repeats(app, client):
    ticks = []
    scheduler_of(app).every(0.03, lambda: ticks.append(time.monotonic()))
    time.sleep(0.1)
    assert ticks == []  # nothing runs in a process that serves no request
    first_request = time.monotonic()
    client.get("/login")
    wait_until(lambda: len(ticks) >= 3)
    # Tick n is due `n` intervals after the first request, never earlier. (Comparing each tick
    # with the one before measured when each job's thread got to run, which a busy machine
    # delays by milliseconds: a late tick then looked too close to the next, punctual one.)
    assert all(tick >= first_request + 0.03 * n for n, tick in enumerate(ticks[:], start=1))


def test_a_failing_or_slow_job_holds_up_no_other(app, caplog):
    ran = []
    release = threading.Event()
    scheduler = scheduler_of(app)

    def fails():
        raise RuntimeError("broken")

    scheduler.after(0, release.wait, 5)
    scheduler.after(0.01, fails)
    scheduler.after(0.02, ran.append, "still runs")
    wait_until(lambda: ran)  # runs although the first job still waits
    # The failing job runs on its own thread: its log line may come a moment after "still runs".
    failed = "tests.test_jobs.test_a_failing_or_slow_job_holds_up_no_other.<locals>.fails"
    wait_until(lambda: failed in caplog.text)
    release.set()
    assert ran == ["still runs"]


def test_closing_runs_nothing_more_and_waits_for_running_jobs(app):
    ran = []
    scheduler = scheduler_of(app)

    def slow():
        time.sleep(0.1)
        ran.append("finished")

    scheduler.after(0, slow)
    scheduler.after(0.3, ran.append, "never")
    wait_until(lambda: scheduler._running)
    scheduler.close()
    assert ran == ["finished"]
    time.sleep(0.4)
    assert ran == ["finished"]


def test_an_interval_must_be_positive(app):
    with pytest.raises(ValueError, match="positive"):
        scheduler_of(app).every(0, print)


def test_periodic_jobs_are_named_by_module_and_function(app):
    names = {name_of(job) for _, job in scheduler_of(app)._periodic}
    assert "chipper.services.settings.prune_events" in names
