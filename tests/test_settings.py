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
        ({"GATEWAY_LANES": '{"bulk": {"warmup": [0, 1]}}'}, "GATEWAY_LANES.bulk.warmup.0"),
        ({"GATEWAY_LANES": '{"bulk": {"firstContactPerDay": -1}}'}, "GATEWAY_LANES.bulk.firstContactPerDay"),
        ({"GATEWAY_THROTTLE": '{"window": 0}'}, "GATEWAY_THROTTLE.window"),
        ({"GATEWAY_THROTTLE": '{"pauze": 5}'}, "GATEWAY_THROTTLE.pauze"),
        ({"GATEWAY_DAY_LENGTH": "0"}, "GATEWAY_DAY_LENGTH"),
    ],
)
def test_bad_value_stops_start_up_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        load_settings(env)


def test_unbanned_rules_default_to_a_ramp_and_limits_on_bulk_and_keywords_parse_either_way() -> None:
    settings = load_settings({})
    assert settings.lanes["urgent"].warmup == (1.0,)
    assert settings.lanes["bulk"].warmup[0] == 0.1 and settings.lanes["bulk"].warmup[-1] == 1
    assert settings.lanes["bulk"].first_contact_per_day == 20 and settings.lanes["normal"].first_contact_per_day is None
    assert settings.lanes["bulk"].spacing == 86400 and settings.lanes["normal"].spacing == 0
    assert settings.opt_out_keywords == ("STOP", "BAJA", "SAIR", "UNSUBSCRIBE")
    assert load_settings({"GATEWAY_OPT_OUT_KEYWORDS": " parar, Cancel "}).opt_out_keywords == ("PARAR", "CANCEL")
    assert load_settings({"GATEWAY_OPT_OUT_KEYWORDS": '["baja"]'}).opt_out_keywords == ("BAJA",)
    throttle = load_settings({"GATEWAY_THROTTLE": '{"afterBan": 60}'}).throttle
    assert throttle.after_ban == 60 and throttle.window == 20


def test_media_links_use_the_public_url_or_else_the_listening_address() -> None:
    assert load_settings({"GATEWAY_PUBLIC_URL": "https://gw.example.com"}).base_url == "https://gw.example.com"
    assert load_settings({"GATEWAY_HOST": "0.0.0.0", "GATEWAY_PORT": "9000"}).base_url == "http://0.0.0.0:9000"
    with pytest.raises(SettingsError, match="GATEWAY_PUBLIC_URL"):
        load_settings({"GATEWAY_PUBLIC_URL": "gw.example.com"})
    with pytest.raises(SettingsError, match="GATEWAY_MEDIA_RETENTION"):
        load_settings({"GATEWAY_MEDIA_RETENTION": "0"})
