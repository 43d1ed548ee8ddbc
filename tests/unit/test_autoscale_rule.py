"""The autoscaler's rule (autoscale/rule.py): ceil(current × observed / target), a tolerance
band, up at once within a step, down only after the stabilization window, within bounds."""

from __future__ import annotations

import pytest

from slipway.autoscale.rule import decide, recommend
from slipway.config.autoscale import Autoscale
from slipway.config.load import parse_config
from slipway.deploy.planning import plan_formation
from slipway.errors import ConfigError

POLICY = Autoscale(min=1, max=10, target=10.0, scale_down_after=300.0)


@pytest.mark.parametrize(
    ("current", "observed", "expected"),
    [
        (2, 10.0, 2),  # on target
        (2, 10.9, 2),  # within the 10% band
        (2, 11.5, 3),  # 2 × 1.15 = 2.3 → 3
        (2, 15.0, 3),  # exactly 3: not 4 by a float's error
        (4, 5.0, 2),
        (4, 0.0, 1),  # the floor
        (3, 100.0, 10),  # the ceiling
    ],
)
def test_the_recommendation_is_hpas_rule_within_bounds(
    current: int, observed: float, expected: int
) -> None:
    assert recommend(POLICY, current, observed) == expected


def test_up_is_at_once_but_at_most_max_step_up() -> None:
    decision = decide(POLICY, "web", 2, 50.0, [], now=1000.0)
    assert (decision.recommended, decision.desired) == (10, 6)
    assert "at most 4 at a time" in decision.reason


def test_down_waits_for_every_recommendation_of_the_window_to_agree() -> None:
    recent = [(800.0, 4), (900.0, 3)]  # 4 was wanted 200 s ago: within 300 s
    held = decide(POLICY, "web", 4, 2.0, recent, now=1000.0)
    assert (held.recommended, held.desired) == (1, 4)
    assert held.reason.startswith("down later")
    later = decide(POLICY, "web", 4, 2.0, recent, now=1150.0)  # 4 has left the window
    assert later.desired == 3  # the highest still within it
    after = decide(POLICY, "web", 4, 2.0, [(900.0, 3)], now=1250.0)
    assert after.desired == 1


def test_no_reading_keeps_the_count_unless_it_is_out_of_bounds() -> None:
    assert decide(POLICY, "web", 3, None, [], 0.0).desired == 3
    assert decide(POLICY, "web", 12, None, [], 0.0).desired == 10


def test_a_deploy_keeps_the_count_the_autoscaler_reached_within_the_new_bounds() -> None:
    text = 'name = "a"\n[processes]\nweb = "x $PORT"\n[scale]\nweb = 2\n'
    old = parse_config(text)
    new = parse_config(
        text.replace("web = 2", "web = 3") + "[autoscale.web]\nmax = 6\ntarget = 5\n"
    )
    assert plan_formation({"web": 5}, old, new) == {"web": 5}
    assert plan_formation({"web": 9}, old, new) == {"web": 6}
    assert plan_formation({}, None, new) == {"web": 3}


@pytest.mark.parametrize(
    ("section", "said"),
    [
        ("[autoscale.web]\nmin = 5\nmax = 4\ntarget = 8\n", "min (5) is above max (4)"),
        ("[autoscale.web]\nmax = 4\ntarget = 0\n", "autoscale.web.target"),
        ("[autoscale.worker]\nmax = 4\ntarget = 8\n", 'signal = "inflight" cannot be measured'),
        ('[autoscale.nope]\nmax = 4\ntarget = 1\nsignal = "cpu"\n', "unknown process type"),
    ],
)
def test_bad_autoscale_config_names_the_key(section: str, said: str) -> None:
    text = 'name = "a"\n[processes]\nweb = "x $PORT"\nworker = "y"\n' + section
    with pytest.raises(ConfigError) as error:
        parse_config(text)
    assert said in str(error.value)
