# Duffy's stdout callback for ansible-playbook (ansible-core 2.14 and later, incl. 2.19+).
#
# Duffy (the Rust server) writes this file into a private directory for every playbook run
# and selects it with ANSIBLE_STDOUT_CALLBACK=duffy_events. It does two things:
#   * prints one short human-readable line per task result on stdout (kept in Duffy's
#     debug log);
#   * appends one JSON object per task result to the file named by DUFFY_ANSIBLE_EVENTS:
#     {"event": "ok"|"failed"|"unreachable"|"skipped", "host", "task", "action",
#      "ignore_errors", "msg", and for a successful set_fact that sets it, "duffy_out"}.
# Duffy reads `duffy_out` from the last successful set_fact event that carries it, as the
# original Duffy did with ansible-runner's JSON events.
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: duffy_events
    type: stdout
    short_description: task results as JSON lines for Duffy
    description:
      - Writes every task result as one JSON line to the file named by DUFFY_ANSIBLE_EVENTS
        and a short line per result on stdout.
"""


def _field(result, name):
    # ansible-core 2.19 exposes public properties; older versions only the private ones.
    value = getattr(result, name, None)
    if value is None:
        value = getattr(result, "_" + name, None)
    return value


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "duffy_events"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._events_path = os.environ.get("DUFFY_ANSIBLE_EVENTS")

    def _record(self, event, result, ignore_errors=False):
        task = _field(result, "task")
        host = _field(result, "host")
        res = _field(result, "result") or {}
        record = {
            "event": event,
            "host": getattr(host, "name", str(host)),
            "task": getattr(task, "name", "") or "",
            "action": getattr(task, "action", "") or "",
            "ignore_errors": bool(ignore_errors),
        }
        msg = res.get("msg") if hasattr(res, "get") else None
        if msg is not None:
            record["msg"] = str(msg)
        if event == "ok" and record["action"] in ("set_fact", "ansible.builtin.set_fact"):
            facts = res.get("ansible_facts") or {}
            if "duffy_out" in facts:
                record["duffy_out"] = facts["duffy_out"]
        line = "%s: [%s] %s%s" % (
            event,
            record["host"],
            record["task"] or record["action"],
            (" => " + record["msg"]) if "msg" in record and event != "ok" else "",
        )
        self._display.display(line)
        if self._events_path:
            with open(self._events_path, "a", encoding="utf-8") as events:
                events.write(json.dumps(record, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._record("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record("failed", result, ignore_errors)

    def v2_runner_on_unreachable(self, result):
        self._record("unreachable", result)

    def v2_runner_on_skipped(self, result):
        self._record("skipped", result)

    def v2_playbook_on_stats(self, stats):
        for host in sorted(stats.processed.keys()):
            summary = stats.summarize(host)
            self._display.display(
                "recap: [%s] ok=%d changed=%d failed=%d unreachable=%d skipped=%d"
                % (
                    host,
                    summary["ok"],
                    summary["changed"],
                    summary["failures"],
                    summary["unreachable"],
                    summary["skipped"],
                )
            )
