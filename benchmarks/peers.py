"""Running a peer library beside ours, in its own virtual environment.

Peers (girth, ...) are never imported by the project. `make bench` creates
`.venv-peers` with them from PyPI; a benchmark sends a peer a small script
and data through files and reads back JSON. When the peer cannot be
installed or fails, the benchmark records why instead of a figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS_VENV = ROOT / ".venv-peers"
PEER_PACKAGES = ["girth", "catsim"]


def peer_python():
    """The peers' interpreter, created on first use; None when it cannot be made."""
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=False)
        if made.returncode != 0:
            return None
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES],
                               capture_output=True, text=True, check=False)
    return python if installed.returncode == 0 else None


def run_peer(script, arrays, timeout=900):
    """Run `script` in the peers' environment with `arrays` saved as .npy files.

    The script sees a dict `inputs` of loaded arrays and must set a dict
    `result`; its `seconds` should time the estimation alone.
    Returns (result or None, note).
    """
    import numpy as np

    python = peer_python()
    if python is None:
        return None, "peer environment could not be installed"
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", array)
        program = (
            "import json, sys, time, numpy as np\n"
            f"inputs = {{n: np.load(f'{folder}/' + n + '.npy') for n in {list(arrays)!r}}}\n"
            f"{script}\n"
            f"json.dump(result, open('{folder}/result.json', 'w'))\n")
        try:
            done = subprocess.run([str(python), "-c", program], capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return None, f"did not finish in {timeout} s"
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["failed"])[-1]
            return None, f"failed: {last[:160]}"
        return json.loads((folder / "result.json").read_text()), ""
