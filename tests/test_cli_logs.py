"""The `facegate` command line's manners: flags where people type them, errors said once
on stderr, logs the journal can filter, and no native noise from LiteRT or OpenCV."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
FACES = REPO / "tests" / "fixtures" / "faces"


def facegate(*args, env=None, stderr_file: Path | None = None):
    """Run `python -m daemon ARGS`; with ``stderr_file`` stderr goes to that file (to give
    it a device:inode, as journald's socket has) and is returned in .stderr."""
    full_env = {**os.environ, **(env or {})}
    if stderr_file is None:
        return subprocess.run([sys.executable, "-m", "daemon", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=120, env=full_env)
    with stderr_file.open("w") as err:
        st = os.fstat(err.fileno())
        if full_env.get("JOURNAL_STREAM") == "match":
            full_env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        result = subprocess.run([sys.executable, "-m", "daemon", *args], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=err, text=True, timeout=120, env=full_env)
    result.stderr = stderr_file.read_text()
    return result


@pytest.mark.parametrize("argv", [["-v", "run"], ["run", "-v"], ["run", "--verbose"], ["list", "-v"],
                                  ["-v", "list"]])
def test_verbose_works_before_and_after_the_subcommand(argv):
    assert build_parser().parse_args(argv).verbose is True


@pytest.mark.parametrize("argv", [["run"], ["embed", "x.jpg"], ["list"]])
def test_without_verbose_it_is_off(argv):
    assert build_parser().parse_args(argv).verbose is False


def test_version_prints_the_installed_version():
    from importlib.metadata import version
    result = facegate("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"facegate {version('facegate')}"


def test_every_subcommand_option_and_positional_is_explained():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        assert sub.description, f"`facegate {name}` has no description"
        for action in sub._actions:
            assert action.help, f"`facegate {name}` {action.option_strings or action.dest} has no help"


def test_embed_errors_go_to_stderr_naming_the_file_once(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    result = facegate("embed", str(tmp_path / "missing.jpg"), str(text))
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert f"{tmp_path / 'missing.jpg'}: no such file" in lines
    assert any(line.startswith(f"{text}: not a readable image") for line in lines)
    assert result.stderr.count(str(text)) == 1


def test_under_journald_lines_carry_a_priority_and_no_timestamp(tmp_path):
    result = facegate("run", "--replay", str(tmp_path / "nope"), "--state-dir", str(tmp_path), "--once",
                      env={"JOURNAL_STREAM": "match"}, stderr_file=tmp_path / "err")
    assert result.returncode == 2
    assert result.stderr == f"<3>facegate: replay folder not found or without images: {tmp_path / 'nope'}\n"


def test_journald_format_only_when_stderr_is_the_journal(tmp_path):
    """A JOURNAL_STREAM inherited by a command whose stderr went elsewhere keeps timestamps."""
    result = facegate("run", "--replay", str(tmp_path / "nope"), "--state-dir", str(tmp_path), "--once",
                      env={"JOURNAL_STREAM": "1:2"}, stderr_file=tmp_path / "err")
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ERROR facegate: replay folder", result.stderr)


def test_journal_priorities_follow_the_level_on_every_line():
    import logging

    from daemon.logs import JournalFormatter
    fmt = JournalFormatter()

    def line(level, msg):
        return fmt.format(logging.LogRecord("facegate", level, __file__, 1, msg, None, None))
    assert line(logging.WARNING, "camera down") == "<4>facegate: camera down"
    assert line(logging.DEBUG, "face") == "<7>facegate: face"
    assert line(logging.INFO, "ready") == "<6>facegate: ready"
    assert line(logging.ERROR, "a\nb") == "<3>facegate: a\n<3>b"  # a traceback stays an error
    assert line(logging.CRITICAL, "x") == "<2>facegate: x"


def test_embedding_prints_no_litert_xnnpack_banner():
    result = facegate("embed", str(sorted((FACES / "Serena_Williams").iterdir())[0]))
    assert result.returncode == 0, result.stderr
    assert "XNNPACK" not in result.stderr and "embedding[:4]" in result.stdout


def test_native_stderr_filter_drops_only_the_noise(capfd):
    from daemon.runtime import native_stderr_filtered
    with native_stderr_filtered(noise=(b"banner",)):
        os.write(2, b"INFO: banner\nkeep me\n")
    assert capfd.readouterr().err == "keep me\n"


def test_a_missing_edge_tpu_runtime_names_the_config_key_without_a_traceback():
    result = facegate("embed", "--backend", "edgetpu", str(sorted((FACES / "Serena_Williams").iterdir())[0]))
    assert result.returncode == 2
    assert "libedgetpu" in result.stderr and 'backend = "cpu" in [model]' in result.stderr
    assert "Traceback" not in result.stderr and "__del__" not in result.stderr


def test_opencv_camera_retries_are_not_warned_from_cpp(tmp_path):
    code = ("from daemon.logs import configure; configure(False)\n"
            "import cv2; cv2.VideoCapture(97); cv2.VideoCapture('/dev/video97', cv2.CAP_V4L2)\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0 and "WARN" not in result.stderr
