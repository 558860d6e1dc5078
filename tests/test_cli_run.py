"""`facegate run` argument handling that needs no model: overrides and early, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from daemon.cli import build_parser, run_overrides
from daemon.config import load_config

REPO = Path(__file__).resolve().parent.parent


def facegate(*args):
    return subprocess.run([sys.executable, "-m", "daemon", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_embedded_default_flags_make_a_valid_standalone_config(tmp_path):
    args = build_parser().parse_args(["run", "--replay", "frames", "--fps", "5", "--gallery-photos", "people",
                                      "--state-dir", str(tmp_path), "--once"])
    cfg = load_config(None, run_overrides(args), env={})
    assert (cfg.source.kind, cfg.source.path, cfg.source.fps, cfg.source.loop) == ("replay", "frames", 5.0, False)
    assert cfg.gallery.photos == "people" and cfg.device.state_dir == str(tmp_path)
    assert not cfg.broker_configured and args.once


def test_flags_override_the_config_file_and_absent_flags_do_not(tmp_path):
    config = tmp_path / "f.toml"
    config.write_text('[source]\nkind = "replay"\npath = "/a"\nloop = true\n[mqtt]\nhost = "broker"\n')
    args = build_parser().parse_args(["run", "--config", str(config), "--camera", "rtsp://cam/1"])
    cfg = load_config(args.config, run_overrides(args), env={})
    assert (cfg.source.kind, cfg.source.device, cfg.source.loop) == ("opencv", "rtsp://cam/1", True)
    assert cfg.mqtt.host == "broker"


def test_a_bad_config_is_refused_naming_the_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[decision]\nk = 6\nn = 5\n")
    result = facegate("run", "--config", str(config))
    assert result.returncode == 2 and result.stdout == ""
    assert "config error: decision.k must be ≤ decision.n (got k=6, n=5)" in result.stderr


def test_a_missing_replay_folder_is_an_immediate_error_not_an_endless_retry(tmp_path):
    result = facegate("run", "--replay", str(tmp_path / "nope"), "--state-dir", str(tmp_path), "--once")
    assert result.returncode == 2
    assert "replay folder not found or without images" in result.stderr


def test_a_state_folder_others_can_write_to_stops_the_daemon_before_anything_loads(tmp_path):
    """It holds biometric data: whoever can write there could swap the gallery."""
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "x.jpg").write_bytes(b"not looked at")
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    result = facegate("run", "--replay", str(tmp_path / "frames"), "--state-dir", str(state), "--once")
    assert result.returncode == 2 and result.stdout == ""
    assert f"state folder {state} is writable by other users" in result.stderr and "chmod 700" in result.stderr
