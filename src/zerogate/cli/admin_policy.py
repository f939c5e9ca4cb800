"""`zerogate admin policy`: push, list, show, roll back, what-if, impact, and policy tests.

Policy tests are a YAML list of expectations kept beside the policy in the admins' own
repository, e.g.

    - name: alice reaches grafana from the office
      user: alice
      app: grafana
      from: 198.18.0.7
      expect: allow

`zerogate admin policy test TESTS.yaml [--policy CANDIDATE.yaml]` runs them on the control
plane (against the candidate when given, else the policy in force) and exits 1 on a failure.
"""

# No `from __future__ import annotations`: typer reads these annotations at run time.

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from zerogate.cli.client import Api, err

out = Console()
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
_CASE_KEYS = {
    "name",
    "user",
    "app",
    "device",
    "from",
    "at",
    "method",
    "path",
    "mfa_at",
    "expect",
}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]cannot read {path}:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


def _print_decision(result: dict[str, Any]) -> None:
    colour = {"allow": "green", "deny": "red", "step_up": "yellow"}.get(result["effect"], "white")
    rule = result["rule"] or "no rule (default deny)"
    out.print(
        f"[{colour}]{result['effect']}[/{colour}] by {rule} (policy version {result['policy_version']})"
    )
    if result.get("monitored"):
        out.print(
            f"  monitor mode: enforcing would {result['would_be']} ({result['would_be_rule']})"
        )
    for reason in result["reasons"]:
        out.print(
            f"  - {reason['text']}" + (f" [{reason['rule']}]" if reason["rule"] else ""),
            highlight=False,
        )


def _cases(path: Path) -> list[dict[str, object]]:
    try:
        data = yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        err.print(f"[red]{path}: invalid YAML:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if not isinstance(data, list) or not all(isinstance(case, dict) for case in data):
        err.print(f"[red]{path}: expected a list of test cases[/red]")
        raise typer.Exit(2)
    cases = []
    for index, case in enumerate(data):
        unknown = set(case) - _CASE_KEYS
        if unknown:
            err.print(f"[red]{path}: case {index + 1}: unknown keys {sorted(unknown)}[/red]")
            raise typer.Exit(2)
        body: dict[str, object] = {key: str(value) for key, value in case.items() if key != "from"}
        if "from" in case:
            body["source_ip"] = str(case["from"])
        cases.append(body)
    return cases


def policy_app(api: Callable[[], Api]) -> typer.Typer:
    app = typer.Typer(help="Policy as code: versions, what-if and tests.", no_args_is_help=True)

    @app.command("push", help="Validate and store FILE as the next policy version.")
    def push(
        file: Annotated[Path, typer.Argument(help="The policy YAML.")],
        message: Annotated[str, typer.Option("--message", "-m", help="Why this change.")] = "",
    ) -> None:
        version = (
            api()
            .request("POST", "/policy/versions", json={"source": _read(file), "comment": message})
            .json()
        )
        out.print(f"policy version {version['version']} is in force")

    @app.command("list", help="Policy versions, newest first.")
    def list_versions(as_json: JsonFlag = False) -> None:
        rows = api().request("GET", "/policy/versions").json()
        if as_json:
            out.print_json(json.dumps(rows))
            return
        table = Table("version", "created", "author", "comment", title="policy versions")
        for row in rows:
            table.add_row(str(row["version"]), row["created_at"], row["author"], row["comment"])
        out.print(table)

    @app.command("show", help="One version's source, or with --diff its change.")
    def show(
        version: Annotated[int, typer.Argument()],
        diff: Annotated[bool, typer.Option("--diff")] = False,
    ) -> None:
        row = api().request("GET", f"/policy/versions/{version}").json()
        out.print(row["diff"] if diff else row["source"], highlight=False, markup=False)

    @app.command("rollback", help="Put an older version back in force (as a new version).")
    def rollback(version: Annotated[int, typer.Argument()]) -> None:
        row = api().request("POST", f"/policy/versions/{version}/rollback").json()
        out.print(f"policy version {row['version']} (= version {version}) is in force")

    @app.command("check", help="What would the policy decide? (what-if)")
    def check(
        user: Annotated[str, typer.Option(help="Username.")],
        app_name: Annotated[str, typer.Option("--app", help="Application name.")],
        source: Annotated[str | None, typer.Option("--from", help="Source IP address.")] = None,
        at: Annotated[str | None, typer.Option(help="Time, ISO 8601 with zone.")] = None,
        method: Annotated[str | None, typer.Option(help="HTTP method.")] = None,
        path: Annotated[str | None, typer.Option(help="HTTP path.")] = None,
        device: Annotated[
            str | None, typer.Option(help="Device name: its enrolment and latest posture.")
        ] = None,
        as_json: JsonFlag = False,
    ) -> None:
        body = {
            "user": user,
            "app": app_name,
            "device": device,
            "source_ip": source,
            "at": at,
            "method": method,
            "path": path,
        }
        result = (
            api()
            .request("POST", "/policy/check", json={k: v for k, v in body.items() if v is not None})
            .json()
        )
        if as_json:
            out.print_json(json.dumps(result))
        else:
            _print_decision(result)

    @app.command("test", help="Run a file of expectations; exit 1 if any fails.")
    def test(
        tests: Annotated[Path, typer.Argument(help="YAML list of cases.")],
        policy: Annotated[
            Path | None, typer.Option("--policy", help="Candidate policy (default: in force).")
        ] = None,
    ) -> None:
        body: dict[str, object] = {"cases": _cases(tests)}
        if policy is not None:
            body["source"] = _read(policy)
        report = api().request("POST", "/policy/test", json=body).json()
        table = Table("", "case", "expected", "got", "rule", title=f"policy tests ({tests})")
        for result in report["results"]:
            mark = "[green]pass[/green]" if result["passed"] else "[red]FAIL[/red]"
            table.add_row(
                mark, result["name"], result["expected"], result["effect"], result["rule"] or "-"
            )
        out.print(table)
        failed = sum(not r["passed"] for r in report["results"])
        out.print(f"{len(report['results']) - failed} passed, {failed} failed")
        if failed:
            raise typer.Exit(1)

    @app.command(
        "impact", help="Replay recorded decisions against CANDIDATE: who would gain or lose."
    )
    def impact(
        candidate: Annotated[Path, typer.Argument(help="The candidate policy YAML.")],
        days: Annotated[int, typer.Option(help="Replay the decisions of the last N days.")] = 7,
        enforce: Annotated[
            bool, typer.Option("--enforce", help="As if every app and rule were enforcing.")
        ] = False,
        as_json: JsonFlag = False,
    ) -> None:
        body = {"source": _read(candidate), "days": days, "enforce": enforce}
        with out.status(f"replaying the decisions of the last {days} days"):
            report = api().request("POST", "/policy/impact", json=body).json()
        if as_json:
            out.print_json(json.dumps(report))
            return
        table = Table(
            "user", "app", "now", "candidate", "requests", "last seen", "why",
            title=f"impact of {candidate.name}",
        )  # fmt: skip
        for change in report["changes"]:
            table.add_row(
                change["user"],
                change["app"],
                change["before"],
                change["after"],
                str(change["count"]),
                change["last_seen"],
                "; ".join(change["reasons"]),
            )
        out.print(table)
        out.print(f"{report['replayed']} decisions replayed since {report['since']}")
        out.print(f"{len(report['changes'])} (user, app) outcomes would change")
        if report["unreadable"]:
            out.print(f"[yellow]{report['unreadable']} recorded events could not be replayed")

    @app.command(
        "access",
        help="What a user (--user) or device (--device) can reach, or who can reach an app (--app).",
    )
    def access(
        user: Annotated[str | None, typer.Option(help="Username.")] = None,
        device: Annotated[str | None, typer.Option(help="Device name.")] = None,
        app_name: Annotated[str | None, typer.Option("--app", help="Application name.")] = None,
        as_json: JsonFlag = False,
    ) -> None:
        if sum(x is not None for x in (user, device, app_name)) != 1:
            err.print("[red]give exactly one of --user, --device and --app[/red]")
            raise typer.Exit(2)
        if user:
            path = f"/policy/access/users/{user}"
        elif device:
            path = f"/policy/access/devices/{device}"
        else:
            path = f"/policy/access/apps/{app_name}"
        result = api().request("GET", path).json()
        if as_json:
            out.print_json(json.dumps(result))
        elif device:
            table = Table(
                "app", "granted by", "device ready", "why not",
                title=f"what {device} ({result['user'] or 'no owner'}) can reach",
            )  # fmt: skip
            for row in result["apps"]:
                table.add_row(
                    row["app"],
                    ", ".join(row["rules"]) or "-",
                    "[green]yes[/green]" if row["device_ready"] else "[red]no[/red]",
                    "; ".join(row["device_reasons"]),
                )
            out.print(table)
        elif user:
            table = Table(
                "app", "granted by", "conditional", "monitor", title=f"what {user} can reach"
            )
            for row in result["apps"]:
                table.add_row(
                    row["app"],
                    ", ".join(row["rules"]) or "-",
                    "yes" if row["conditional"] else "",
                    "yes" if row["monitor"] else "",
                )
            out.print(table)
        else:
            table = Table("rule", "who", "conditional", title=f"who can reach {app_name}")
            for row in result["audience"]:
                who = (
                    "everyone"
                    if row["everyone"]
                    else ", ".join(
                        f"{kind}:{name}"
                        for kind in ("users", "groups", "departments", "offices")
                        for name in row[kind]
                    )
                )
                table.add_row(row["rule"], who, "yes" if row["conditional"] else "")
            out.print(table)

    return app
