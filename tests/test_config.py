"""Config loading: validation errors name the key, unknown keys fail, env secrets, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import Config, ConfigError, config_from_dict, example_toml, load_config

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "facegate.example.toml"


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "facegate.toml"
    path.write_text(text)
    return path


def test_the_shipped_example_is_the_documented_defaults_and_loads():
    assert EXAMPLE.read_text() == example_toml(), "regenerate: python -m daemon.config > config/facegate.example.toml"
    assert load_config(EXAMPLE, env={}) == Config()


def test_a_typical_file_loads_into_typed_fields(tmp_path):
    cfg = load_config(write(tmp_path, """
        [device]
        id = "front-door"
        site = "hq"
        state_dir = "/tmp/x"
        [source]
        kind = "replay"
        path = "/frames"
        fps = 5
        [decision]
        k = 2
        n = 4
        [mqtt]
        host = "broker.lan"
        port = 8883
    """), env={})
    assert (cfg.device.id, cfg.device.site, cfg.source.kind, cfg.source.path) == ("front-door", "hq", "replay", "/frames")
    assert cfg.source.fps == 5.0 and isinstance(cfg.source.fps, float)
    assert (cfg.decision.k, cfg.decision.n, cfg.decision.cooldown_s) == (2, 4, 10.0)
    assert cfg.broker_configured and cfg.mqtt.port == 8883


@pytest.mark.parametrize("toml,message", [
    ("[decision]\nk = 6\nn = 5", "config error: decision.k must be ≤ decision.n (got k=6, n=5)"),
    ("[decision]\nk = \"3\"", "config error: decision.k must be an integer (got '3')"),
    ("[decision]\nk = 2.5", "decision.k must be an integer"),
    ("[events]\nunknown_face = 1", "events.unknown_face must be true or false"),
    ("[decision]\ncooldown = 3", "unknown key decision.cooldown"),
    ("[camera]\nkind = \"opencv\"", "unknown section or key 'camera'"),
    ("decision = 3", "[decision] must be a table"),
    ("[source]\nkind = \"webcam\"", "source.kind must be one of replay, opencv, picamera2 (got 'webcam')"),
    ("[source]\nkind = \"replay\"", 'source.path is required when source.kind = "replay"'),
    ("[device]\nid = \"door/1\"", "device.id must be 1-64 letters"),
    ("[device]\nsite = \"#\"", "device.site must be"),
    ("[mqtt]\nport = 70000", "mqtt.port must be in 1..65535 (got 70000)"),
    ("[mqtt]\nreconnect_min_s = 10\nreconnect_max_s = 5", "mqtt.reconnect_max_s must be ≥ mqtt.reconnect_min_s"),
    ("[matching]\nthreshold = 3.0", "matching.threshold must be in 0..2"),
    ("[quality]\nmax_faces = 0", "quality.max_faces must be in 1..16"),
    ("[model]\nbackend = \"gpu\"", "model.backend must be one of cpu, edgetpu"),
    ("[decision\nk = 3", "is not valid TOML"),
])
def test_invalid_values_are_clear_errors_naming_the_key(tmp_path, toml, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, toml), env={})
    assert message in str(info.value)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read .*nope.toml"):
        load_config(tmp_path / "nope.toml")


def test_overrides_win_over_the_file_and_are_validated_too(tmp_path):
    path = write(tmp_path, "[source]\nkind = \"opencv\"\n[decision]\nk = 2")
    cfg = load_config(path, {"source.kind": "replay", "source.path": "/f", "source.fps": 30.0}, env={})
    assert (cfg.source.kind, cfg.source.path, cfg.source.fps, cfg.decision.k) == ("replay", "/f", 30.0, 2)
    with pytest.raises(ConfigError, match="decision.k must be ≤ decision.n"):
        load_config(path, {"decision.n": 1}, env={})


def test_password_comes_from_env_or_file_and_never_shows_in_repr(tmp_path):
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n")
    raw = {"mqtt": {"host": "b", "password": "in-config"}}
    assert config_from_dict(raw, env={}).mqtt.password == "in-config"
    assert config_from_dict(raw, env={"FACEGATE_MQTT_PASSWORD_FILE": str(secret_file)}).mqtt.password == "from-file"
    cfg = config_from_dict(raw, env={"FACEGATE_MQTT_PASSWORD": "from-env",
                                     "FACEGATE_MQTT_PASSWORD_FILE": str(secret_file)})
    assert cfg.mqtt.password == "from-env"
    assert "from-env" not in repr(cfg)
    with_file = config_from_dict({"mqtt": {"password_file": str(secret_file)}}, env={})
    assert with_file.mqtt.password == "from-file"


def test_an_unreadable_password_file_names_its_source(tmp_path):
    with pytest.raises(ConfigError, match="FACEGATE_MQTT_PASSWORD_FILE: cannot read"):
        config_from_dict({}, env={"FACEGATE_MQTT_PASSWORD_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="mqtt.password_file: cannot read"):
        config_from_dict({"mqtt": {"password_file": str(tmp_path / "missing")}}, env={})


def test_every_word_a_config_accepts_is_one_the_runtime_acts_on():
    """config.py is the one list of source kinds and liveness modes; each must exist."""
    from daemon.config import LIVENESS_MODES, SOURCE_KINDS
    from daemon.frames import SOURCES
    from daemon.liveness.policy import MODES

    assert set(SOURCE_KINDS) == set(SOURCES)
    assert set(LIVENESS_MODES) == set(MODES)
