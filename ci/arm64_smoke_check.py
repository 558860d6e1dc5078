"""Checks for ci/arm64-smoke, run on the host (x86) with the host's venv.

    demo  X86_JSONL ARM64_JSONL      the same people unlock (and someone does), no one else
    embed X86_JSONL ARM64_JSONL --float X86_FLOAT_JSONL ARM64_FLOAT_JSONL
                                     `facegate embed --json` agrees: same faces; the float model's
                                     embeddings to cosine 0.99999, the int8 model's no further
                                     from them on arm64 than on x86 (see INT8_ERROR_RATIO)
    mqtt  --port P --site S --device D --expect X86_JSONL --enrolled N -- COMMAND...
          subscribe to the door's topics on the broker, run COMMAND (the arm64 door), then
          require its unlock events to be the x86 demo's and its health record to say so

Nothing here knows the model's numbers: every expectation comes from the x86 run of the
same commit in the same CI run. Who unlocks is compared, not how often: the cooldown after
an unlock (decision.cooldown_s) runs on the wall clock, and emulation is so much slower per
frame that a cooldown which spans the rest of the demo on x86 can end before the replay does.
Exit status 0 = pass, 1 = the check failed, 2 = usage.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import threading
import time
import uuid

# The float encoder agrees across machines to float rounding (cosine >= 0.9999995 measured),
# so it checks that both sides cut the same crops and run the same network: a crop shifted by
# one pixel scores about 0.989, one with +-1 grey-level noise about 0.9995.
FLOAT_MIN_COSINE = 0.99999
# The int8 encoder's kernels round differently on x86 and aarch64 (XNNPACK picks other int8
# paths), and by as much as int8 itself costs: for fg-5447c98bcd0cb0bf, cosine(x86, arm64)
# 0.992-0.998 where cosine(int8, float) is 0.987-0.995 on either machine. So no fixed bound
# fits every model; instead arm64's int8 must be no further from the float embedding than
# INT8_ERROR_RATIO times x86's (+ INT8_ERROR_SLACK for faces int8 happens to get nearly
# right). Measured: at most 1.2 times. A broken kernel misses by orders of magnitude, and
# who unlocks is checked by the demo and mqtt checks.
INT8_ERROR_RATIO = 2.0
INT8_ERROR_SLACK = 0.002


def fail(message: str) -> int:
    print(f"FAIL: {message}")
    return 1


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def unlock_ids(events: list[dict]) -> list[str]:
    return [e["person_id"] for e in events if e.get("event") == "unlock"]


def check_demo(args) -> int:
    x86, arm = unlock_ids(read_jsonl(args.x86)), unlock_ids(read_jsonl(args.arm64))
    print(f"unlocks on x86: {x86}; on arm64: {arm}")
    if not x86:
        return fail("the x86 demo unlocked nobody, so there is nothing to compare against")
    if set(arm) != set(x86):
        return fail(f"arm64 unlocked {sorted(set(arm))}, x86 unlocked {sorted(set(x86))}")
    return 0


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def paired(x86: list[dict], arm: list[dict], kind: str) -> tuple[list[tuple[str, list, list]], int]:
    """(image, x86 embedding, arm64 embedding) for the images both sides embedded alike."""
    if len(x86) != len(arm) or not x86:
        return [], fail(f"{kind}: {len(x86)} records on x86, {len(arm)} on arm64")
    pairs, failures = [], 0
    for a, b in zip(x86, arm):
        image = a["image"]
        if b["image"] != image:
            return [], fail(f"{kind}: images out of order: {image} vs {b['image']}")
        if a.get("embedding") is None:
            failures += fail(f"{kind} {image}: no embedding on x86 ({a.get('error')})")
        elif b.get("embedding") is None:
            failures += fail(f"{kind} {image}: no embedding on arm64 ({b.get('error')})")
        elif a["model_id"] != b["model_id"]:
            failures += fail(f"{kind} {image}: model {a['model_id']} on x86, {b['model_id']} on arm64")
        elif len(a["faces"]) != len(b["faces"]) or len(a["embedding"]) != len(b["embedding"]):
            failures += fail(f"{kind} {image}: {len(a['faces'])} face(s) / {len(a['embedding'])}-d on x86, "
                             f"{len(b['faces'])} / {len(b['embedding'])}-d on arm64")
        else:
            pairs.append((image, a["embedding"], b["embedding"]))
    return pairs, failures


def check_embed(args) -> int:
    int8, failures = paired(read_jsonl(args.x86), read_jsonl(args.arm64), "int8")
    floats, float_failures = paired(read_jsonl(args.float[0]), read_jsonl(args.float[1]), "float")
    failures += float_failures
    reference = {image: x86 for image, x86, _ in floats}
    for image, x86, arm in floats:
        c = cosine(x86, arm)
        ok = c >= FLOAT_MIN_COSINE
        print(f"{'ok  ' if ok else 'FAIL'} float {image}: cosine(x86, arm64) = {c:.7f} (need >= {FLOAT_MIN_COSINE})")
        failures += not ok
    for image, x86, arm in int8:
        if image not in reference:
            continue                      # its float record failed above
        err_x86, err_arm = 1 - cosine(x86, reference[image]), 1 - cosine(arm, reference[image])
        limit = INT8_ERROR_RATIO * err_x86 + INT8_ERROR_SLACK
        ok = err_arm <= limit
        print(f"{'ok  ' if ok else 'FAIL'} int8  {image}: cosine(x86, arm64) = {cosine(x86, arm):.6f}; "
              f"1 - cosine to float: arm64 {err_arm:.5f}, x86 {err_x86:.5f} (need arm64 <= {limit:.5f})")
        failures += not ok
    return 1 if failures else 0


def check_mqtt(args) -> int:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    base = f"facegate/{args.site}/device/{args.device}"
    topics = {"event": f"{base}/event", "health": f"{base}/health", "status": f"{base}/status"}
    received: dict[str, list[bytes]] = {k: [] for k in topics}
    lock, subscribed = threading.Lock(), threading.Event()
    kind = {t: k for k, t in topics.items()}

    def on_connect(client, userdata, flags, reason_code, properties):
        client.subscribe([(t, 1) for t in topics.values()])

    def on_message(client, userdata, message):
        with lock:
            received[kind[message.topic]].append(message.payload)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"arm64-smoke-{uuid.uuid4().hex[:8]}")
    client.on_connect = on_connect
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = on_message
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    try:
        if not subscribed.wait(10):
            return fail("could not subscribe to the broker")
        print(f"subscribed to {base}/{{event,health,status}}; running the arm64 door")
        door = subprocess.run(args.command, timeout=args.timeout)
        if door.returncode != 0:
            return fail(f"the arm64 door exited with status {door.returncode}")
        expected = unlock_ids(read_jsonl(args.expect))

        def events():
            with lock:
                return [json.loads(p) for p in received["event"]]

        def last_health():
            with lock:
                return json.loads(received["health"][-1]) if received["health"] else None

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (set(unlock_ids(events())) < set(expected) or last_health() is None):
            time.sleep(0.1)
        time.sleep(1.0)  # anything else would arrive now
        got, health = unlock_ids(events()), last_health()
    finally:
        client.disconnect()
        client.loop_stop()

    print(f"unlock events on the broker: {got}; x86 demo: {expected}")
    failures = 0
    if not expected:
        failures += fail("the x86 demo unlocked nobody, so there is nothing to compare against")
    if set(got) != set(expected):
        failures += fail(f"the arm64 door published unlocks of {sorted(set(got))}, expected {sorted(set(expected))}")
    for e in events():
        if e.get("device_id") != args.device or e.get("site") != args.site:
            failures += fail(f"event from the wrong door: {e}")
    if health is None:
        return fail("no health record on the broker")
    summary = {"device_id": health.get("device_id"), "gallery.persons": health["gallery"]["persons"],
               "manifest.state": (health.get("manifest") or {}).get("state"),
               "events.unlock": health["events"].get("unlock", 0), "events.pending": health["events"]["pending"],
               "frames": health["frames"], "records.rejected": health["records"]["rejected"]}
    print(f"health record: {json.dumps(summary)}")
    wanted = {"device_id": args.device, "gallery.persons": args.enrolled, "manifest.state": "fresh",
              "events.unlock": len(got), "events.pending": 0, "records.rejected": {}}
    for key, value in wanted.items():
        if summary[key] != value:
            failures += fail(f"health {key} = {summary[key]!r}, expected {value!r}")
    if not summary["frames"]:
        failures += fail("health says no frames were processed")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="check", required=True)
    compare = {}
    for name, func in (("demo", check_demo), ("embed", check_embed)):
        compare[name] = p = sub.add_parser(name)
        p.add_argument("x86")
        p.add_argument("arm64")
        p.set_defaults(func=func)
    compare["embed"].add_argument("--float", nargs=2, required=True, metavar=("X86_JSONL", "ARM64_JSONL"),
                                  help="the same images embedded with the float model")
    p = sub.add_parser("mqtt")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--expect", required=True, help="the x86 demo's events (JSON lines)")
    p.add_argument("--enrolled", type=int, required=True, help="people enrolled on the broker")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("command", nargs="+")
    p.set_defaults(func=check_mqtt)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
