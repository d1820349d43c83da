import pytest

from config import SettingsError, load_settings


def test_lanes_override_merges_with_defaults() -> None:
    settings = load_settings({"GATEWAY_LANES": '{"bulk": {"gap": [0.1, 0.2], "perHour": 3, "perDay": 10}}'})
    assert settings.lanes["bulk"].gap == (0.1, 0.2)
    assert settings.lanes["bulk"].per_hour == 3
    assert settings.lanes["normal"].per_hour == 80


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GATEWAY_PORT": "eighty"}, "GATEWAY_PORT"),
        ({"GATEWAY_LANES": "{not json"}, "GATEWAY_LANES"),
        ({"GATEWAY_LANES": '{"bulk": {"gap": [5, 1]}}'}, "GATEWAY_LANES.bulk.gap"),
        ({"GATEWAY_LANES": '{"vip": {}}'}, "GATEWAY_LANES"),
        ({"GATEWAY_DRIVER": "selenium"}, "GATEWAY_DRIVER"),
        ({"GATEWAY_ALLOW_PRIVATE_URLS": "perhaps"}, "GATEWAY_ALLOW_PRIVATE_URLS"),
        ({"GATEWAY_REDIS_URL": "http://x"}, "GATEWAY_REDIS_URL"),
        ({"GATEWAY_RATE_LIMT": "5"}, "GATEWAY_RATE_LIMT"),
    ],
)
def test_bad_value_stops_start_up_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        load_settings(env)
