"""The trust region's box and its adaptation."""

from __future__ import annotations

import pytest
import torch

from grammar_ae.bo.trust_region import TrustRegionConfig, TrustRegionState, region_centre, trust_region_bounds
from grammar_ae.errors import ConfigError


def test_a_failure_halves_the_width_and_three_successes_double_it():
    config = TrustRegionConfig(initial=0.5, minimum=0.125, maximum=1.0)
    state = TrustRegionState(config.initial)
    widths = []
    for improved in (False, False, False, True, True, True, True, True, True, True, True, True, False, True):
        state.update(improved, 1.0, config)
        widths.append(state.half_width)
    assert widths == [0.25, 0.125, 0.125, 0.125, 0.125, 0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 1.0, 0.5, 0.5]
    assert state.successes == 1 and state.failures == 0


def test_a_batch_of_mostly_known_strings_widens_the_region_at_once():
    config = TrustRegionConfig(initial=0.5, minimum=0.125, maximum=1.0, failure_tolerance=2, min_new_fraction=0.5)
    state = TrustRegionState(config.initial)
    state.update(False, 0.5, config)  # half new: a first failure, not yet enough to shrink
    assert (state.half_width, state.failures) == (0.5, 1)
    state.update(False, 0.48, config)
    assert (state.half_width, state.failures, state.successes) == (1.0, 0, 0)
    state.update(False, 0.0, config)
    assert state.half_width == 1.0  # never beyond the maximum
    state.update(True, 0.0, config)  # an improvement counts as a success however few strings were new
    assert (state.half_width, state.successes) == (1.0, 1)


def test_with_min_new_fraction_zero_only_a_batch_with_nothing_new_widens():
    config = TrustRegionConfig(initial=0.5, minimum=0.125, maximum=1.0, min_new_fraction=0.0)
    state = TrustRegionState(config.initial)
    state.update(False, 0.02, config)
    assert state.half_width == 0.25
    state.update(False, 0.0, config)
    assert state.half_width == 0.5


def test_a_region_stalled_at_its_widest_restarts_at_the_initial_width_and_abandons_its_centre():
    config = TrustRegionConfig(initial=0.5, minimum=0.125, maximum=1.0, restart_after=2)
    state = TrustRegionState(1.0)
    centre = torch.tensor([0.5, -1.0])
    state.update(False, 0.1, config)
    assert state.stalls == 1 and not state.restart_if_stalled(centre, 1, config)
    state.update(True, 0.1, config)  # an improvement ends the stall
    assert state.stalls == 0
    state.update(False, 0.1, config)
    state.update(False, 0.0, config)
    assert state.restart_if_stalled(centre, 4, config)
    assert (state.half_width, state.stalls, state.abandoned) == (0.5, 0, [{"iteration": 4, "centre": [0.5, -1.0]}])
    state.update(False, 0.1, config)  # below the maximum nothing stalls
    assert state.stalls == 0


def test_a_region_that_keeps_finding_new_strings_narrows_instead_of_stalling():
    config = TrustRegionConfig(initial=1.0, maximum=1.0, restart_after=1)
    state = TrustRegionState(1.0)
    state.update(False, 0.9, config)
    assert state.half_width == 0.5 and state.stalls == 1
    state.update(False, 0.9, config)
    assert state.stalls == 0 and not state.restart_if_stalled(torch.zeros(2), 2, config)


def test_restarts_are_off_with_restart_after_zero():
    config = TrustRegionConfig(maximum=1.0, initial=1.0, restart_after=0)
    state = TrustRegionState(1.0)
    for _ in range(5):
        state.update(False, 0.0, config)
    assert not state.restart_if_stalled(torch.zeros(2), 2, config) and state.half_width == 1.0


def test_the_centre_is_the_best_point_outside_every_abandoned_box():
    latents = torch.tensor([[0.0, 0.0], [0.5, 0.5], [3.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    ranked = torch.tensor([1, 0, 3, 2])
    scale = torch.ones(2, dtype=torch.float64)
    def abandoned(*centres):
        return [{"iteration": i, "centre": c} for i, c in enumerate(centres)]

    assert region_centre(latents, ranked, [], scale, 1.0) == 1
    assert region_centre(latents, ranked, abandoned([0.4, 0.4]), scale, 1.0) == 3  # rows 1 and 0 lie within 1.0
    assert region_centre(latents, ranked, abandoned([0.4, 0.4], [0.0, 3.0], [3.0, 0.0]), scale, 1.0) == 1  # the best


def test_bounds_are_centred_on_the_point_and_clipped_to_the_search_box():
    bounds = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    box = trust_region_bounds(torch.tensor([0.0, 0.9, -0.5]), torch.tensor([1.0, 0.5, 2.0]), 0.25, bounds)
    assert torch.allclose(box, torch.tensor([[-0.25, 0.775, -1.0], [0.25, 1.0, 0.0]]))


@pytest.mark.parametrize("changes, message", [
    ({"initial": 4.0}, "minimum <= initial <= maximum"),
    ({"minimum": 0.0}, "minimum <= initial <= maximum"),
    ({"failure_tolerance": 0}, "failure_tolerance must be at least 1"),
    ({"min_new_fraction": 1.5}, "min_new_fraction must be in \\[0, 1\\], got 1.5"),
    ({"restart_after": -1}, "restart_after must be at least 0, got -1"),
])
def test_bad_configs_are_clear_errors(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrustRegionConfig(**changes)
