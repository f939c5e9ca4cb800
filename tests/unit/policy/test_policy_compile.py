"""compile.py: the index holds the right rules; unknown or re-tagged apps take the slow path."""

from __future__ import annotations

from policykit import ctx, rule

from zerogate.core.policy.compile import compile_policy
from zerogate.core.policy.decide import decide_naive
from zerogate.core.policy.model import App, Effect, Policy, Subjects, Targets

POLICY = Policy(
    (
        rule("by-name", subjects=Subjects(users=frozenset({"alice"}))),
        rule("by-tag", targets=Targets(tags=frozenset({"observability"}))),
        rule(
            "by-glob",
            targets=Targets(globs=("graf*",)),
            subjects=Subjects(groups=frozenset({"ops"})),
        ),
        rule("other-app", targets=Targets(apps=frozenset({"wiki"}))),
    )
)


def test_bucket_holds_only_rules_for_the_app() -> None:
    compiled = compile_policy(POLICY, [App("grafana", frozenset({"observability"})), App("wiki")])
    tags, index = compiled.apps["grafana"]
    assert tags == frozenset({"observability"})
    assert index.everyone == (1,)
    assert dict(index.users) == {"alice": (0,)} and dict(index.groups) == {"ops": (2,)}
    assert compiled.apps["wiki"][1].everyone == (3,)


def test_lookup_gathers_by_subject_in_file_order() -> None:
    compiled = compile_policy(POLICY, [App("grafana", frozenset({"observability"}))])
    index = compiled.apps["grafana"][1]
    assert index.lookup(ctx(groups=frozenset({"ops"}))) == [0, 1, 2]
    assert index.lookup(ctx(user="bob", groups=frozenset())) == [1]


def test_rules_for_app() -> None:
    compiled = compile_policy(POLICY)
    found = compiled.rules_for_app("grafana", frozenset({"observability"}))
    assert [r.name for r in found] == ["by-name", "by-tag", "by-glob"]


def test_unknown_and_retagged_apps_decide_like_naive() -> None:
    compiled = compile_policy(POLICY, [App("grafana")])  # compiled without its tag
    for request in (
        ctx(user="bob"),  # re-tagged since: only by-tag can grant
        ctx(user="bob", app=App("grafana-2")),  # unknown: glob only, bob not in ops
        ctx(user="bob", groups=frozenset({"ops"}), app=App("grafana-2")),
    ):
        assert compiled.decide(request) == decide_naive(POLICY, request)
    assert compiled.decide(ctx(user="bob")).effect is Effect.ALLOW
    assert compiled.decide(ctx(user="bob", app=App("grafana-2"))).effect is Effect.DENY
