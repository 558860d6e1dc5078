"""CI plumbing: .ci/run runs exactly the README's test command, then the arm64 smoke test;
the smoke test's comparisons (ci/arm64_smoke_check.py) fail when arm64 and x86 disagree."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_test_command() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("Run the tests"):]
    return re.search(r"```sh\n(.+?)\n```", section, re.S).group(1).strip()


def ci_commands() -> list[str]:
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_the_readme_test_command_verbatim_then_the_arm64_smoke_test():
    commands = ci_commands()
    assert readme_test_command() in commands
    assert commands.index("ci/arm64-smoke") == commands.index(readme_test_command()) + 1
    assert commands[-1] == "ci/arm64-smoke"


def test_the_smoke_script_is_valid_bash_and_executable():
    script = REPO / "ci" / "arm64-smoke"
    assert script.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(script)], check=True)


def _checker():
    spec = importlib.util.spec_from_file_location("arm64_smoke_check", REPO / "ci" / "arm64_smoke_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _unlock(person):
    return {"event": "unlock", "person_id": person, "distance": 0.3}


def test_demo_check_needs_the_same_unlocks_and_at_least_one(tmp_path):
    check = _checker()
    x86 = _jsonl(tmp_path / "x86", [_unlock("a")])
    assert check.main(["demo", x86, _jsonl(tmp_path / "same", [_unlock("a")])]) == 0
    assert check.main(["demo", x86, _jsonl(tmp_path / "other", [_unlock("b")])]) == 1
    assert check.main(["demo", x86, _jsonl(tmp_path / "more", [_unlock("a"), _unlock("b")])]) == 1
    assert check.main(["demo", x86, _jsonl(tmp_path / "twice", [_unlock("a"), _unlock("a")])]) == 0, "cooldown: wall clock"
    assert check.main(["demo", x86, _jsonl(tmp_path / "none", [])]) == 1
    nobody = _jsonl(tmp_path / "nobody", [])
    assert check.main(["demo", nobody, nobody]) == 1, "nothing to compare is not a pass"


def test_embed_check_needs_the_same_crops_faces_and_int8_error(tmp_path):
    check = _checker()

    def rec(embedding, faces=1, model="m"):
        return {"image": "a.jpg", "model_id": model, "faces": [{}] * faces, "embedding": embedding}

    def run(arm_int8, arm_float=rec([1.0, 0.0, 0.0, 0.0])):
        # x86: float [1,0,0,0]; int8 [1,0.1,0,0], 1 - cosine to float 0.00496, so arm64's
        # int8 may be up to 2 * 0.00496 + 0.002 = 0.0119 from the float embedding.
        files = [_jsonl(tmp_path / name, [r]) for name, r in (
            ("x86", rec([1.0, 0.1, 0.0, 0.0])), ("arm", arm_int8),
            ("x86f", rec([1.0, 0.0, 0.0, 0.0])), ("armf", arm_float))]
        return check.main(["embed", files[0], files[1], "--float", files[2], files[3]])

    # 0.00966 from float, and cosine 0.985 to x86's int8: the kernels round differently.
    assert run(rec([1.0, 0.0, 0.14, 0.0])) == 0
    assert run(rec([1.0, 0.0, 0.17, 0.0])) == 1, "0.0142 from float: more than int8 explains"
    assert run(rec([1.0, 0.0, 0.14, 0.0]), rec([1.0, 0.003, 0.0, 0.0])) == 0   # float cos 0.9999955
    assert run(rec([1.0, 0.0, 0.14, 0.0]), rec([1.0, 0.01, 0.0, 0.0])) == 1, "float cos 0.99995: another crop"
    assert run(rec(None, 0)) == 1
    assert run(rec([1.0, 0.1, 0.0, 0.0], 2)) == 1
    assert run(rec([1.0, 0.1, 0.0, 0.0], model="n")) == 1
    assert run(rec([1.0, 0.1, 0.0, 0.0]), rec(None, 0)) == 1
    assert run(rec([1.0, 0.1, 0.0, 0.0]), rec([1.0, 0.0, 0.0, 0.0], 2)) == 1
    empty = _jsonl(tmp_path / "empty", [])
    assert check.main(["embed", empty, empty, "--float", empty, empty]) == 1


FAKE_DOOR = """
import json, sys, paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, site, door, person, state = sys.argv[1:]
c = mqtt.Client(CallbackAPIVersion.VERSION2)
c.connect("127.0.0.1", int(port))
c.loop_start()
base = f"facegate/{site}/device/{door}"
event = {"event": "unlock", "person_id": person, "device_id": door, "site": site}
health = {"device_id": door, "gallery": {"persons": 3}, "manifest": {"state": state},
          "events": {"unlock": 1, "pending": 0}, "frames": 15, "records": {"rejected": {}}}
c.publish(base + "/event", json.dumps(event), qos=1).wait_for_publish(5)
c.publish(base + "/health", json.dumps(health), qos=1, retain=True).wait_for_publish(5)
c.disconnect()
c.loop_stop()
"""


def test_mqtt_check_needs_the_x86_unlock_and_a_fresh_health_record(tmp_path, broker):
    """The door is faked here (a script that publishes what a door would); the real one is the
    arm64 daemon in ci/arm64-smoke."""
    import sys
    check = _checker()
    script = tmp_path / "door.py"
    script.write_text(FAKE_DOOR)
    expect = _jsonl(tmp_path / "x86", [_unlock("kofi")])

    def run(site, person, state):
        return check.main(["mqtt", "--port", str(broker.port), "--site", site, "--device", "d1", "--expect", expect,
                           "--enrolled", "3", "--", sys.executable, str(script), str(broker.port), site, "d1",
                           person, state])

    assert run("s1", "kofi", "fresh") == 0
    assert run("s2", "arnold", "fresh") == 1, "a different person unlocked"
    assert run("s3", "kofi", "none") == 1, "the door had no manifest"
