"""Site manifest size and cost (issue 9: "measure the size at 10^4 people").

    python -m bench manifest [--sizes 100,1000,10000,100000] [--revoked 0.1] [--json OUT]

For each site size: the signed top and its pages (count, largest, total bytes), the
bytes one enrollment makes the server republish (the changed page and the top), and the
time to build and sign it (server) and to verify and assemble it (device). Person ids
are 12 characters and versions 13-digit millisecond times, as `facegate enroll` makes
them; ``--revoked`` of the people are tombstones. Figures go in docs/security.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.machine import cpu_model
from daemon.protocol.manifest import MAX_PAGE_BYTES, assemble, build_manifest, parse_page, parse_top
from daemon.protocol.signing import Trust

SITE, MODEL = "hq", "fg-f43456ca724bd70e"


def entries_for(n: int, revoked: float) -> dict[str, tuple[int, bool]]:
    step = round(1 / revoked) if revoked else 0
    return {f"emp-{i:08d}": (1_738_320_000_000 + 37 * i, bool(step) and i % step == 0) for i in range(n)}


def measure(n: int, revoked: float, key: Ed25519PrivateKey, trust: Trust) -> dict:
    entries = entries_for(n, revoked)
    started = time.perf_counter()
    manifest = build_manifest(SITE, MODEL, entries, 1, time.time(), 14_400, key)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    top = parse_top(*manifest.top, SITE, MODEL, trust=trust)
    pages = dict(parse_page(t, p, SITE, MODEL) for t, p in manifest.pages)
    assert len(assemble(top, pages).entries) == n
    verify_s = time.perf_counter() - started
    person = next(iter(entries))
    again = build_manifest(SITE, MODEL, {**entries, person: (entries[person][0] + 1, False)}, 2, time.time(),
                           14_400, key)
    changed = sum(len(b) for (_, a), (_, b) in zip(manifest.pages, again.pages) if a != b) + len(again.top[1])
    sizes = [len(p) for _, p in manifest.pages]
    return {"people": n, "pages": len(sizes), "top_bytes": len(manifest.top[1]), "largest_page_bytes": max(sizes),
            "total_bytes": sum(sizes) + len(manifest.top[1]), "one_enrollment_republishes_bytes": changed,
            "build_sign_ms": round(build_s * 1000, 1), "device_verify_ms": round(verify_s * 1000, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench manifest", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    parser.add_argument("--revoked", type=float, default=0.1, help="fraction of tombstones (default 0.1)")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    key = Ed25519PrivateKey.generate()
    trust = Trust.of(key.public_key())
    rows = [measure(int(n), args.revoked, key, trust) for n in args.sizes.split(",")]
    print(f"# {cpu_model()}, Python {platform.python_version()}; page limit {MAX_PAGE_BYTES} bytes")
    print("| people | pages | top | largest page | total | one enrollment republishes | build+sign | device verify |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['people']:,} | {r['pages']} | {r['top_bytes']:,} B | {r['largest_page_bytes']:,} B | "
              f"{r['total_bytes'] / 1024:,.0f} KiB | {r['one_enrollment_republishes_bytes'] / 1024:,.1f} KiB | "
              f"{r['build_sign_ms']} ms | {r['device_verify_ms']} ms |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_model(), "rows": rows}, f, indent=1)
    return 0
