"""domain.sync without I/O: the SyncJob state machine, conflict resolution, cron, next-run-due and jitter."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from connectors.webhooks import github_signature, slack_signature, verify_github, verify_slack
from domain import (ConflictResolution, InvalidConfiguration, InvalidStateTransition, Resolution, Side, SyncCounts,
                    SyncFrequency, SyncJob, SyncState, next_run_due, resolve_conflict)
from domain.sync import CronSchedule, jittered, validate_frequency

APP = "int_" + "0" * 32


def job(**kw) -> SyncJob:
    return SyncJob.create("sync_1", app_id=APP, user="alice", service="github", stream="issues",
                          resource="octo/demo", now=0.0, **kw)


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M %a")


def at(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc).timestamp()


def test_a_run_that_finishes_reports_its_counts_and_duration():
    j = job()
    assert [e.type for e in j.pull_events()] == ["sync.job_changed"]
    j.start_run(now=10.0)
    j.finish(SyncCounts(created=3, updated=1, pages=2), now=12.5, duration=2.5)
    events = j.pull_events()
    synced = next(e for e in events if e.type == "data.synced")
    assert synced.payload() | {"job_id": "x"} == {"service": "github", "job_id": "x", "stream": "issues:octo/demo",
                                                   "created": 3, "updated": 1, "deleted": 0, "pushed": 0,
                                                   "conflicts": 0, "duration": 2.5}
    assert j.state is SyncState.IDLE and j.totals.created == 3 and j.last_success_at == 12.5 and j.runs == 1


def test_stall_and_failure_are_never_success():
    j = job()
    j.start_run(now=1.0)
    j.stall(SyncCounts(created=5), now=700.0, after=600.0)
    types = [e.type for e in j.pull_events()]
    assert "integration.failed" in types and "data.synced" not in types
    assert j.state is SyncState.STALLED and j.last_success_at is None and "600s" in j.last_error
    j.start_run(now=800.0)                         # a stalled job may run again
    j.fail(SyncCounts(), now=801.0, category="service_down", message="GitHub 503", status=503)
    failed = [e for e in j.pull_events() if e.type == "integration.failed"][0]
    assert failed.payload()["status"] == 503 and "issues:octo/demo" in failed.payload()["message"]


@pytest.mark.parametrize("moves, refused", [
    (["pause", "pause"], "paused to paused"),
    (["start", "start"], "running to running"),
    (["start", "pause"], "cancel it first"),
    (["resume"], "idle to idle"),
    (["start", "delete"], "cancel it first"),
])
def test_invalid_transitions_are_refused(moves, refused):
    j = job()
    act = {"pause": lambda: j.pause(now=1), "start": lambda: j.start_run(now=1), "resume": lambda: j.resume(now=1),
           "delete": lambda: j.deleted(now=1)}
    with pytest.raises(InvalidStateTransition, match=refused):
        for m in moves:
            act[m]()


def test_a_crash_leaves_running_which_startup_turns_back_to_idle():
    j = job()
    assert not j.interrupted(now=1.0)
    j.start_run(now=1.0)
    assert j.interrupted(now=2.0) and j.state is SyncState.IDLE


def test_batch_size_and_resource_are_checked():
    with pytest.raises(InvalidConfiguration, match="batch_size"):
        job(batch_size=0)
    with pytest.raises(InvalidConfiguration, match="stream and a resource"):
        SyncJob.create("s", app_id=APP, user="a", service="github", stream="issues", resource="", now=0)


@pytest.mark.parametrize("policy, local, remote, expected", [
    (ConflictResolution.REMOTE_WINS, Side(9, "a"), Side(1, "b"), Resolution.TAKE_REMOTE),
    (ConflictResolution.LOCAL_WINS, Side(1, "a"), Side(9, "b"), Resolution.KEEP_LOCAL),
    (ConflictResolution.MANUAL, Side(1, "a"), Side(9, "b"), Resolution.PARK),
    (ConflictResolution.LATEST_WINS, Side(2, "a"), Side(1, "b"), Resolution.KEEP_LOCAL),
    (ConflictResolution.LATEST_WINS, Side(1, "a"), Side(2, "b"), Resolution.TAKE_REMOTE),
    (ConflictResolution.LATEST_WINS, Side(5, "f"), Side(5, "e"), Resolution.KEEP_LOCAL),
    (ConflictResolution.LATEST_WINS, Side(5, "e"), Side(5, "f"), Resolution.TAKE_REMOTE),
    (ConflictResolution.MANUAL, Side(1, "same"), Side(9, "same"), Resolution.TAKE_REMOTE),
])
def test_conflict_resolution(policy, local, remote, expected):
    assert resolve_conflict(policy, local, remote) is expected


def test_latest_wins_tie_break_is_the_same_seen_from_either_side():
    a, b = Side(7.0, "1f"), Side(7.0, "a0")
    here = resolve_conflict(ConflictResolution.LATEST_WINS, a, b)      # a is local here ...
    there = resolve_conflict(ConflictResolution.LATEST_WINS, b, a)     # ... and remote over there
    assert {here, there} == {Resolution.KEEP_LOCAL, Resolution.TAKE_REMOTE}
    winner_here = a if here is Resolution.KEEP_LOCAL else b
    winner_there = b if there is Resolution.KEEP_LOCAL else a
    assert winner_here == winner_there


@pytest.mark.parametrize("expr, after, expected", [
    ("*/15 * * * *", "2026-01-01 10:07", "2026-01-01 10:15 Thu"),
    ("0 9-17 * * mon-fri", "2026-01-02 17:30", "2026-01-05 09:00 Mon"),     # Friday evening -> Monday
    ("30 2 1 * *", "2026-01-15 00:00", "2026-02-01 02:30 Sun"),
    ("0 0 29 2 *", "2026-03-01 00:00", "2028-02-29 00:00 Tue"),             # the next leap day
    ("0 12 13 * 5", "2026-02-01 00:00", "2026-02-06 12:00 Fri"),            # day-of-month OR day-of-week
    ("0 0 * * 7", "2026-01-01 00:00", "2026-01-04 00:00 Sun"),              # 7 is Sunday
    ("5,10-12 3 * jan,dec *", "2026-01-01 03:11", "2026-01-01 03:12 Thu"),
])
def test_cron_next_after(expr, after, expected):
    assert utc(CronSchedule.parse(expr).next_after(at(after))) == expected


@pytest.mark.parametrize("expr, message", [
    ("* * * *", "five fields"), ("60 * * * *", "outside 0-59"), ("* 24 * * *", "outside 0-23"),
    ("*/0 * * * *", "bad step"), ("5-1 * * * *", "backwards"), ("x * * * *", "not a number"),
    ("0 0 31 2 *", "never matches"),
])
def test_bad_cron_is_refused_naming_the_field(expr, message):
    with pytest.raises(InvalidConfiguration, match=message) as e:
        CronSchedule.parse(expr).next_after(0)
    assert e.value.field == "frequency.cron"


def test_next_run_due_per_frequency():
    assert next_run_due(SyncFrequency.every_minutes(15), last_run=None, now=100.0) == 100.0
    assert next_run_due(SyncFrequency.every_minutes(15), last_run=100.0, now=200.0) == 1000.0
    assert next_run_due(SyncFrequency.daily(), last_run=0.0, now=10**6) == 10**6, "overdue: now"
    assert next_run_due(SyncFrequency.realtime(), last_run=None, now=0.0) is None
    cron = SyncFrequency.from_cron("0 * * * *")
    assert utc(next_run_due(cron, last_run=at("2026-01-01 10:00") + 5, now=at("2026-01-01 10:00") + 6)) \
        == "2026-01-01 11:00 Thu"
    assert next_run_due(cron, last_run=None, now=at("2026-01-01 10:00")) == at("2026-01-01 10:00")
    with pytest.raises(InvalidConfiguration):
        validate_frequency(SyncFrequency.from_cron("99 * * * *"))


def test_jitter_spreads_jobs_only_later_and_within_bounds():
    rng = random.Random(4)
    f = SyncFrequency.hourly()
    dues = [jittered(1000.0, f, rng, share=0.1) for _ in range(200)]
    assert all(1000.0 <= d <= 1300.0 for d in dues) and len({round(d) for d in dues}) > 100


def test_github_signature_matches_the_reference_vector():
    assert github_signature(b"It's a Secret to Everybody", b"Hello, World!") == \
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    good = github_signature(b"s", b"body")
    assert verify_github(b"s", b"body", good) is None
    assert verify_github(b"s", b"body!", good) == "signature does not match"
    assert verify_github(b"s", b"body", None) == "no X-Hub-Signature-256 header"
    assert verify_github(b"s", b"body", "sha1=abc") == "X-Hub-Signature-256 is not a sha256= signature"


def test_slack_signature_and_its_five_minute_window():
    sig = slack_signature(b"secret", "1700000000", b"payload")
    assert verify_slack(b"secret", b"payload", "1700000000", sig, now=1700000299.0) is None
    assert "window" in verify_slack(b"secret", b"payload", "1700000000", sig, now=1700000301.0)
    assert verify_slack(b"wrong", b"payload", "1700000000", sig, now=1700000000.0) == "signature does not match"
    assert "not a number" in verify_slack(b"secret", b"payload", "soon", sig, now=0.0)
