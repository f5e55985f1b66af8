"""The storyboard's `speed:` (farm.spec.speed): forms, errors that name the field and the
allowed values (never a clamp), the job-store record and the API form."""

from __future__ import annotations

import json

import pytest

from farm.api.convert import film_to_storyboard, storyboard_to_film
from farm.spec.errors import SpecError
from farm.spec.serde import film_from_dict, film_to_dict
from farm.spec.speed import CacheSetting, resolve_speed
from tests.helpers import board, make_film, scene

FBC = {"cache": "first-block", "threshold": 0.08}
MAG = {"cache": "magcache", "threshold": 0.1, "mag_ratios": [1.0, 0.99, 0.98]}


def test_forms_resolve_per_expert():
    fbc = CacheSetting("first-block", (("threshold", 0.08),))
    assert resolve_speed("speed", None, ("high", "low")) == (None, [])
    assert resolve_speed("speed", "exact", ("high", "low")) == ((None, None), [])
    assert resolve_speed("speed", FBC, ("high", "low")) == ((fbc, fbc), [])
    assert resolve_speed("speed", {"low": FBC}, ("high", "low")) == ((None, fbc), [])
    (one,), _ = resolve_speed("speed", {"cache": "taylorseer"}, ("dense",))
    assert dict(one.params) == {"cache_interval": 5, "disable_cache_before_step": 3,
                                "disable_cache_after_step": None, "max_order": 1}


def test_scene_setting_replaces_the_films():
    film = make_film([scene("a"), scene("b", speed="exact"), scene("c", speed={"high": FBC})],
                     speed=MAG)
    a, b, c = film.scenes
    assert [s.cache for s in a.speed] == ["magcache", "magcache"]
    assert b.speed == ()  # exact: the same record as a film without `speed`
    assert c.speed[0].cache == "first-block" and c.speed[1] is None
    assert make_film([scene("a")]).scenes[0].speed == ()


@pytest.mark.parametrize(("speed", "field", "words"), [
    ("fast", "speed", ["'exact'", "first-block, magcache, taylorseer", "high: ..., low: ..."]),
    ({"cache": "teacache"}, "speed.cache", ["first-block, magcache, taylorseer", "teacache"]),
    ({"cache": "first-block", "threshold": 0}, "speed.threshold", ["more than 0", "got 0"]),
    ({"cache": "first-block", "threshold": 1.5}, "speed.threshold", ["at most 1.0", "1.5"]),
    ({"cache": "first-block", "tresh": 0.1}, "speed.tresh", ["its settings: threshold"]),
    ({"cache": "magcache"}, "speed.mag_ratios", ["magnitude ratios"]),
    ({"cache": "taylorseer", "cache_interval": 2.5}, "speed.cache_interval", ["integer"]),
    ({"mid": FBC}, "speed.mid", ["neither `cache` nor an expert"]),
    ({"low": "fast"}, "speed.low", ["'exact'", "first-block"]),
])
def test_errors_name_the_field_and_the_allowed_values(speed, field, words):
    with pytest.raises(SpecError) as err:
        make_film([scene("a")], speed=speed)
    [(path, message)] = [(e.path, e.message) for e in err.value.errors]
    assert path == field
    assert all(w in message for w in words), message


def test_scene_errors_are_at_the_scene():
    with pytest.raises(SpecError) as err:
        make_film([scene("a"), scene("b", speed={"cache": "first-block", "threshold": -1})])
    assert [e.path for e in err.value.errors] == ["scenes[1].speed.threshold"]


def test_job_store_record_round_trips():
    film = make_film([scene("a", speed={"low": MAG}), scene("b")], speed=FBC)
    assert film_from_dict(json.loads(json.dumps(film_to_dict(film)))) == film


def test_api_form_round_trips_and_is_checked_by_the_spec():
    data = board([scene("a", speed={"high": "exact", "low": MAG}), scene("b", speed="exact")],
                 speed={"cache": "taylorseer", "max_order": 2})
    back = film_to_storyboard(storyboard_to_film(data))
    assert back["speed"] == {"cache": "taylorseer", "max_order": 2}
    assert back["scenes"][0]["speed"] == {"high": "exact", "low": MAG}
    assert back["scenes"][1]["speed"] == "exact"
    bad = storyboard_to_film(board([scene("a")], speed={"cache": "first-block",
                                                        "threshold": 2.0}))
    with pytest.raises(SpecError) as err:
        make_film(film_to_storyboard(bad)["scenes"], speed=film_to_storyboard(bad)["speed"])
    assert [e.path for e in err.value.errors] == ["speed.threshold"]
