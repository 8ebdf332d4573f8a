"""The trust region's box and its adaptation."""

from __future__ import annotations

import pytest
import torch

from grammar_ae.bo.trust_region import TrustRegionConfig, TrustRegionState, trust_region_bounds
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


def test_bounds_are_centred_on_the_point_and_clipped_to_the_search_box():
    bounds = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    box = trust_region_bounds(torch.tensor([0.0, 0.9, -0.5]), torch.tensor([1.0, 0.5, 2.0]), 0.25, bounds)
    assert torch.allclose(box, torch.tensor([[-0.25, 0.775, -1.0], [0.25, 1.0, 0.0]]))


@pytest.mark.parametrize("changes, message", [
    ({"initial": 4.0}, "minimum <= initial <= maximum"),
    ({"minimum": 0.0}, "minimum <= initial <= maximum"),
    ({"failure_tolerance": 0}, "failure_tolerance must be at least 1"),
    ({"min_new_fraction": 1.5}, "min_new_fraction must be in \\[0, 1\\], got 1.5"),
])
def test_bad_configs_are_clear_errors(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrustRegionConfig(**changes)
