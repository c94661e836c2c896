"""The CronJob controller: create a Job at every scheduled time (standard five-field cron syntax).

Supports ``*``, lists, ranges, steps, month/day names, the ``@hourly``-style macros,
``spec.timeZone``, ``concurrencyPolicy`` (Allow, Forbid, Replace), ``suspend``,
``startingDeadlineSeconds`` and the job history limits. Jobs are named
``<cronjob>-<scheduled minute since the epoch>`` as on a real cluster.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from labkit.errors import ApiError, Conflict, Invalid, NotFound

from .base import Controller
from .common import (
    controller_ref,
    is_owned_by,
    obj_key,
    owner_reference,
    parse_rfc3339,
    rfc3339,
    split_key,
    write_status,
)

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_NAMES = {
    **{m: i + 1 for i, m in enumerate(_MONTHS)},
    **{d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
#: How far back a missed schedule is still started (like the controller's 100-miss limit).
MAX_LOOKBACK_MINUTES = 100


def _field(text: str, low: int, high: int) -> set[int]:
    out: set[int] = set()
    for item in text.split(","):
        part, step = item, 1
        if "/" in item:
            part, step_text = item.split("/", 1)
            step = int(step_text)
        if part in ("*", "?"):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = int(_NAMES.get(a.lower(), a)), int(_NAMES.get(b.lower(), b))
        else:
            start = int(_NAMES.get(part.lower(), part))
            end = high if step > 1 else start
        if start < low or end > high or start > end or step < 1:
            raise ValueError(f"{text!r} is out of range {low}-{high}")
        out.update(range(start, end + 1, step))
    return out


def parse_schedule(schedule: str) -> tuple[set[int], ...]:
    """The five cron fields as sets (minute, hour, day of month, month, day of week).

    Raises:
        Invalid: the schedule is not valid cron syntax.
    """
    text = _MACROS.get(schedule.strip(), schedule.strip())
    parts = text.split()
    if text.startswith("TZ=") or text.startswith("CRON_TZ="):
        parts = parts[1:]
    if len(parts) != 5:
        raise Invalid(f"unparseable schedule {schedule!r}: expected exactly 5 fields", "use e.g. '*/5 * * * *'",
                      status=422, reason="Invalid")  # fmt: skip
    try:
        fields = tuple(_field(p, lo, hi) for p, (lo, hi) in zip(parts, _RANGES, strict=True))
    except ValueError as exc:
        raise Invalid(f"unparseable schedule {schedule!r}: {exc}", "use e.g. '*/5 * * * *'",
                      status=422, reason="Invalid") from None  # fmt: skip
    dow = fields[4] | ({0} if 7 in fields[4] else set())
    return (*fields[:4], dow)


def _matches(fields: tuple[set[int], ...], t: dt.datetime, dom_star: bool, dow_star: bool) -> bool:
    minute, hour, dom, month, dow = fields
    if t.minute not in minute or t.hour not in hour or t.month not in month:
        return False
    weekday = (t.weekday() + 1) % 7
    if dom_star or dow_star:
        return t.day in dom and weekday in dow
    return t.day in dom or weekday in dow


def schedule_times(schedule: str, after: float, until: float, tz: str | None = None) -> list[float]:
    """Scheduled times (epoch seconds) in ``(after, until]``, at most :data:`MAX_LOOKBACK_MINUTES` of them."""
    fields = parse_schedule(schedule)
    parts = _MACROS.get(schedule.strip(), schedule.strip()).split()[-5:]
    zone = ZoneInfo(tz) if tz else dt.UTC
    t = dt.datetime.fromtimestamp(after - after % 60 + 60, zone)
    out: list[float] = []
    while t.timestamp() <= until and len(out) < MAX_LOOKBACK_MINUTES:
        if _matches(fields, t, parts[2] in ("*", "?"), parts[4] in ("*", "?")):
            out.append(t.timestamp())
        t += dt.timedelta(minutes=1)
        if t.timestamp() - after > 366 * 86400:
            break
    return out


def next_time(schedule: str, after: float, tz: str | None = None) -> float | None:
    """The first scheduled time after ``after`` (within about four years)."""
    fields = parse_schedule(schedule)
    minutes, hours, _, months, _ = fields
    parts = _MACROS.get(schedule.strip(), schedule.strip()).split()[-5:]
    dom_star, dow_star = parts[2] in ("*", "?"), parts[4] in ("*", "?")
    zone = ZoneInfo(tz) if tz else dt.UTC
    t = dt.datetime.fromtimestamp(after - after % 60 + 60, zone)
    limit = t + dt.timedelta(days=4 * 366)
    while t < limit:
        if t.month not in months:
            t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
        elif not _matches((set(range(60)), set(range(24)), *fields[2:]), t, dom_star, dow_star):
            t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
        elif t.hour not in hours:
            t = t.replace(minute=0) + dt.timedelta(hours=1)
        elif t.minute not in minutes:
            t += dt.timedelta(minutes=1)
        else:
            return t.timestamp()
    return None


def _job_done(job: dict[str, Any]) -> str | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


class CronJobController(Controller):
    """Creates Jobs from CronJobs on schedule."""

    name = "cronjob-controller"
    primary = "cronjobs.batch"

    def keys_for(self, event: Any) -> list[str]:
        if event.key == self.primary:
            return [obj_key(event.obj)]
        if event.key == "jobs.batch":
            ref = controller_ref(event.obj)
            if ref and ref.get("kind") == "CronJob":
                return [f"{event.obj['metadata']['namespace']}/{ref['name']}"]
        return []

    def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        cj = self.store.try_get(self.primary, ns, name)
        if cj is None or cj["metadata"].get("deletionTimestamp"):
            return None
        spec = cj.get("spec") or {}
        now = self.ctx.now()
        tz = spec.get("timeZone")
        jobs = self.ctx.list("jobs.batch", ns)
        owned = [j for j in jobs if is_owned_by(j, cj)]
        active = [j for j in owned if not _job_done(j)]
        status = cj.get("status") or {}
        last = parse_rfc3339(status.get("lastScheduleTime")) or parse_rfc3339(cj["metadata"].get("creationTimestamp"))
        last = now if last is None else last
        try:
            due = schedule_times(spec.get("schedule", ""), last, now, tz)
        except (Invalid, KeyError, ValueError) as exc:
            self.event(cj, "UnparseableSchedule", f"unparseable schedule: {exc}", kind="Warning")
            return None
        scheduled_at: float | None = None
        if due and not spec.get("suspend"):
            when = due[-1]
            deadline = spec.get("startingDeadlineSeconds")
            if deadline is None or now - when <= float(deadline):
                policy = spec.get("concurrencyPolicy", "Allow")
                if policy == "Forbid" and active:
                    self.event(cj, "JobAlreadyActive", "Not starting job because prior execution is running and "
                               "concurrency policy is Forbid")  # fmt: skip
                else:
                    if policy == "Replace":
                        for j in active:
                            with contextlib.suppress(NotFound):
                                self.store.delete("jobs.batch", ns, j["metadata"]["name"], propagation="Background")
                            self.event(cj, "SuccessfulDelete", f"Deleted job {j['metadata']['name']}")
                        active = []
                    job = self._create_job(cj, when)
                    if job is not None:
                        active.append(job)
            scheduled_at = when
        self._cleanup(cj, owned)
        self._status(cj, active, owned, scheduled_at)
        if spec.get("suspend"):
            return None
        upcoming = next_time(spec.get("schedule", ""), now, tz)
        return None if upcoming is None else max(0.0, upcoming - now) + 0.001

    def _create_job(self, cj: dict[str, Any], when: float) -> dict[str, Any] | None:
        template = cj["spec"].get("jobTemplate") or {}
        name = f"{cj['metadata']['name']}-{int(when // 60)}"
        meta = template.get("metadata") or {}
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": cj["metadata"]["namespace"],
                "labels": dict(meta.get("labels") or {}),
                "annotations": {
                    **(meta.get("annotations") or {}),
                    "batch.kubernetes.io/cronjob-scheduled-timestamp": rfc3339(when),
                },
                "ownerReferences": [owner_reference(cj)],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        try:
            made = self.store.create("jobs.batch", job, namespace=cj["metadata"]["namespace"])
        except Conflict:
            return None
        except ApiError as exc:
            self.event(cj, "FailedCreate", f"Error creating job: {getattr(exc, 'what', exc)}", kind="Warning")
            return None
        self.event(cj, "SuccessfulCreate", f"Created job {name}")
        return made

    def _cleanup(self, cj: dict[str, Any], owned: list[dict[str, Any]]) -> None:
        spec = cj.get("spec") or {}
        for kind, limit in (
            ("Complete", int(spec.get("successfulJobsHistoryLimit", 3))),
            ("Failed", int(spec.get("failedJobsHistoryLimit", 1))),
        ):
            done = sorted(
                (j for j in owned if _job_done(j) == kind), key=lambda j: j["metadata"].get("creationTimestamp") or ""
            )
            for j in done[: max(0, len(done) - limit)]:
                with contextlib.suppress(NotFound):
                    self.store.delete("jobs.batch", j["metadata"]["namespace"], j["metadata"]["name"],
                                      propagation="Background")  # fmt: skip
                self.event(cj, "SuccessfulDelete", f"Deleted job {j['metadata']['name']}")

    def _status(
        self, cj: dict[str, Any], active: list[dict[str, Any]], owned: list[dict[str, Any]], scheduled: float | None
    ) -> None:
        successes = [
            parse_rfc3339((j.get("status") or {}).get("completionTime")) for j in owned if _job_done(j) == "Complete"
        ]
        last_success = max((t for t in successes if t is not None), default=None)

        def mutate(obj: dict[str, Any]) -> bool:
            old = obj.get("status") or {}
            new: dict[str, Any] = {}
            if active:
                new["active"] = [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": j["metadata"]["name"],
                        "namespace": j["metadata"]["namespace"],
                        "uid": j["metadata"].get("uid", ""),
                        "resourceVersion": j["metadata"].get("resourceVersion", ""),
                    }
                    for j in active
                ]
            last_schedule = rfc3339(scheduled) if scheduled is not None else old.get("lastScheduleTime")
            if last_schedule:
                new["lastScheduleTime"] = last_schedule
            success = rfc3339(last_success) if last_success is not None else old.get("lastSuccessfulTime")
            if success:
                new["lastSuccessfulTime"] = success
            if new == old:
                return False
            obj["status"] = new
            return True

        write_status(self.store, self.primary, cj["metadata"]["namespace"], cj["metadata"]["name"], mutate)
