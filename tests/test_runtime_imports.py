"""The runtime must run on a Raspberry Pi without TensorFlow installed."""

import subprocess
import sys


def test_runtime_never_imports_tensorflow():
    code = ("import sys\n"
            "import daemon.api, daemon.cli, daemon.service, daemon.embeddings.cpu, daemon.frames\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
