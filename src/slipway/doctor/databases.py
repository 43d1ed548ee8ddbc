"""`slipway doctor` on managed databases: pure, from the daemon's database views. A backup
repository on the database's own host is accepted for now, but loudly: one lost disk takes
the database and every backup of it."""

from __future__ import annotations

from typing import Any

from slipway.doctor.checks import Finding

CHECK = "databases"


def check_databases(views: list[dict[str, Any]]) -> list[Finding]:
    found = []
    for view in views:
        name, host = view["name"], view["host"]
        # every repository is on the database's own host today (databases/render.py)
        found.append(
            Finding(
                CHECK,
                "warn",
                f"DATABASE {name.upper()}: ITS BACKUPS ARE ON ITS OWN HOST ({host}); a lost "
                "disk or host loses the database AND every backup of it",
                "copy the repository off the host (e.g. rsync "
                f"<home>/backups/{name} to another machine) until slipway keeps it on "
                "another fleet host (docs/databases.md)",
            )
        )
        if view["state"] not in ("running", "creating", "starting"):
            found.append(
                Finding(
                    CHECK,
                    "fail",
                    f"database {name} on {host} is {view['state']}"
                    + (f": {view['error']}" if view.get("error") else ""),
                    f"see `slipway db`; `slipway db create {name} --host {host}` finishes an "
                    "interrupted create",
                )
            )
        if view.get("overdue"):
            found.append(
                Finding(
                    CHECK,
                    "fail",
                    f"database {name}: {', '.join(view['overdue'])} did not happen on time",
                    f"see `slipway db` and the daemon's log; `slipway db backup {name}` or "
                    f"`slipway db verify {name}` runs one now",
                )
            )
        for kind in ("backup", "verify"):
            run = view.get(f"last_{kind}")
            if run and run["ok"] is False:
                what = "backup" if kind == "backup" else "verification"
                found.append(
                    Finding(
                        CHECK,
                        "fail",
                        f"the last {what} of database {name} failed: {run.get('error')}",
                        f"slipway db {kind} {name}, and see the database's log folder on {host}",
                    )
                )
    return found
