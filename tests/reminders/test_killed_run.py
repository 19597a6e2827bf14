"""`send_expiry_reminders` as a real process, killed with SIGKILL mid-run (twice), then run to
the end and once more: every member gets each reminder once, and no email or SMS twice.

Mail goes through Django's file backend (EMAIL_URL=filemail://...), SMS through the logging
sender appending to SMS_LOG_FILE, so the test counts what really left the process."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from campaigns.models import ReminderDelivery
from loyalty_site.bulk_data import create_earned_lots, create_members
from members.models import InboxMessage
from points.models import OutboxEvent
from tests.fault.conftest import (
    child_env,
    kill_when,
    manage,
    scalar,
    wait_until_the_killed_session_ends,
)
from tests.integration.conftest import BASE_DIR
from tests.reminders.conftest import ZONE, seed_reminder_defaults

pytestmark = pytest.mark.django_db(transaction=True)

MEMBERS = 600
AS_OF = "2031-03-05T10:00:00+08:00"
REMINDER_HEADER = re.compile(rb"^X-Loyalty-Reminder: (\S+)\s*$", re.MULTILINE)


@pytest.fixture
def outlets(tmp_path: Path) -> dict[str, str]:
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    return {
        # Four slashes: django-environ reads an absolute path after "filemail://".
        "EMAIL_URL": f"filemail:///{mail_dir}",
        "SMS_SENDER": "campaigns.sms.LoggingSmsSender",
        "SMS_LOG_FILE": str(tmp_path / "sms.jsonl"),
        "mail_dir": str(mail_dir),
    }


def job_env(outlets: dict[str, str]) -> dict[str, str]:
    return {**child_env(), **{k: v for k, v in outlets.items() if k.isupper()}}


def start_job(outlets) -> subprocess.Popen:
    return subprocess.Popen(
        manage("send_expiry_reminders", "--as-of", AS_OF, "--batch-size", "40"),
        cwd=BASE_DIR,
        env=job_env(outlets),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def run_job(outlets) -> subprocess.CompletedProcess:
    return subprocess.run(
        manage("send_expiry_reminders", "--as-of", AS_OF, "--batch-size", "40"),
        cwd=BASE_DIR,
        env=job_env(outlets),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def emails_written(outlets) -> Counter:
    """How often each reminder (member/window/date) is found in the mail files."""
    found: Counter = Counter()
    for path in Path(outlets["mail_dir"]).iterdir():
        for key in REMINDER_HEADER.findall(path.read_bytes()):
            found[key.decode()] += 1
    return found


def sms_written(outlets) -> Counter:
    path = Path(outlets["SMS_LOG_FILE"])
    if not path.exists():
        return Counter()
    return Counter(json.loads(line)["reference"] for line in path.read_text().splitlines())


def delivery_rows(status: str) -> int:
    return scalar("SELECT count(*) FROM campaigns_reminderdelivery WHERE status = %s", [status])


def test_a_run_killed_twice_then_run_again_sends_every_reminder_once_and_none_twice(outlets):
    seed_reminder_defaults()
    block = create_members(MEMBERS, prefix="remind")
    create_earned_lots(
        block,
        lots_per_account=1,
        points_per_lot=100,
        expires_between=(
            datetime(2031, 3, 6, 12, tzinfo=ZONE),
            datetime(2031, 3, 7, 12, tzinfo=ZONE),
        ),
    )

    # Killed while claiming (or as early as the job gets), then while sending.
    kill_when(start_job(outlets), lambda: scalar("SELECT count(*) FROM campaigns_reminderdelivery"))
    wait_until_the_killed_session_ends()
    kill_when(start_job(outlets), lambda: delivery_rows("sent") >= MEMBERS * 2 + MEMBERS // 2)
    wait_until_the_killed_session_ends()
    sent_before = sum(emails_written(outlets).values()) + sum(sms_written(outlets).values())
    assert 0 < sent_before < 2 * MEMBERS

    finish = run_job(outlets)
    assert finish.returncode == 0, finish.stderr
    emails, texts = emails_written(outlets), sms_written(outlets)
    rows_after_finish = sorted(ReminderDelivery.objects.values_list("pk", "status", "attempts"))
    again = run_job(outlets)
    assert again.returncode == 0, again.stderr

    # The second full run sent nothing and claimed nothing.
    assert (emails_written(outlets), sms_written(outlets)) == (emails, texts)
    assert sorted(ReminderDelivery.objects.values_list("pk", "status", "attempts")) == (
        rows_after_finish
    )
    # Never twice.
    assert max(emails.values()) == 1
    assert max(texts.values()) == 1
    # One row per member and channel; inbox and webhook written with their rows.
    rows = ReminderDelivery.objects.all()
    assert Counter(rows.values_list("channel", flat=True)) == {
        "email": MEMBERS,
        "sms": MEMBERS,
        "inbox": MEMBERS,
        "webhook": MEMBERS,
    }
    assert InboxMessage.objects.values("member").distinct().count() == MEMBERS
    assert InboxMessage.objects.count() == MEMBERS
    assert OutboxEvent.objects.filter(type="points.expiring_soon").count() == MEMBERS
    # Every email and SMS row is sent, except at most one per kill left in doubt ("sending":
    # handed over or not when the process died), which the job never sends again.
    assert rows.filter(status__in=["claimed", "failed", "skipped"]).count() == 0
    in_doubt = list(rows.filter(status="sending"))
    assert len(in_doubt) <= 2
    sent_emails = {
        f"{r.member_id}/{r.window_days}/{r.expires_on.isoformat()}"
        for r in rows.filter(channel="email", status="sent")
    }
    sent_texts = {f"reminder-{r.pk}" for r in rows.filter(channel="sms", status="sent")}
    doubtful = {f"{r.member_id}/{r.window_days}/{r.expires_on.isoformat()}" for r in in_doubt} | {
        f"reminder-{r.pk}" for r in in_doubt
    }
    assert sent_emails <= set(emails) and set(emails) - sent_emails <= doubtful
    assert sent_texts <= set(texts) and set(texts) - sent_texts <= doubtful
    assert len(sent_emails) + len(sent_texts) + len(in_doubt) == 2 * MEMBERS
    assert os.path.getsize(outlets["SMS_LOG_FILE"]) > 0
