"""Grad-CAM: where in a face crop the classifier looks, as heat maps and a PNG grid of overlays.

Works with the backbone nested inside the model (``train.models.build_model`` puts it in a sub-model
layer named ``"backbone"``). A nested model's inner layers are not part of the outer model's graph,
so ``keras.Model(model.inputs, inner_layer.output)`` fails; instead a "grad model" is built *inside*
the backbone, from its input to [the last conv feature map, the backbone output], and the outer
layers before and after the backbone are run around it under one ``tf.GradientTape``. The class
score is the pre-softmax logit of the final ``Dense`` (softmax saturates and would flatten the
gradients).

Examples::

    maskwatch-train explain --model runs/fit/best.keras --data runs/data/test --per-class 4 --out cam.png
    maskwatch-train explain --model runs/fit/best.keras --images a.jpg b.png --out cam.png

    from train.explain import grad_cam
    heat = grad_cam(model, crops)            # (N, H, W) float32 in [0, 1] at the input resolution
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError

log = logging.getLogger("maskwatch.train.explain")


def _is_feature_map(layer, min_side: int) -> bool:
    shape = getattr(layer, "output", None)
    shape = getattr(shape, "shape", None)
    if shape is None or len(shape) != 4:
        return False
    h, w = shape[1], shape[2]
    return h is not None and w is not None and min(h, w) >= min_side


def find_feature_layer(model, min_side: int = 2):
    """(container, layer): the last 4-D feature map with a spatial side >= ``min_side``.

    ``container`` is the nested ``"backbone"`` sub-model when there is one, else ``model``. Falls back
    to any 4-D layer when none is that large (tiny inputs)."""
    try:
        container = model.get_layer("backbone")
    except ValueError:
        container = model
    layers = [layer for layer in container.layers if not layer.__class__.__name__ == "InputLayer"]
    for side in (min_side, 1):
        for layer in reversed(layers):
            if layer is not container and _is_feature_map(layer, side):
                return container, layer
    raise MaskwatchError(f"model {model.name} has no convolutional feature map for Grad-CAM")


def _outer_chain(model, inner):
    """The outer model's layers before and after ``inner``; they must form a simple chain
    (each layer called once, on the previous layer's output), as ``build_model`` makes them."""
    before, after, seen, prev = [], [], False, None
    for layer in model.layers:
        nodes = getattr(layer, "_inbound_nodes", [])
        if len(nodes) != 1 or len(nodes[0].output_tensors) != 1:
            raise MaskwatchError(f"Grad-CAM needs a model whose layers form a chain; {layer.name} does not")
        node = nodes[0]
        if layer.__class__.__name__ != "InputLayer":
            if len(node.input_tensors) != 1 or node.input_tensors[0] is not prev:
                raise MaskwatchError(f"Grad-CAM needs a model whose layers form a chain; {layer.name} does not")
            if layer is inner:
                seen = True
            else:
                (after if seen else before).append(layer)
        prev = node.output_tensors[0]
    return before, after


def _call(layer, x):
    try:
        return layer(x, training=False)
    except TypeError:  # layers whose call() takes no training argument
        return layer(x)


def grad_cam_with_probs(model, images: np.ndarray, class_index=None, layer_name: str | None = None):
    """Grad-CAM heat maps and the model's probabilities: ((N, H, W) float32 in [0, 1], (N, C)).

    ``images``: (N, H, W, 3) raw RGB 0..255 (the model normalises inside). ``class_index``: None (the
    predicted class of each image), an int, or one int per image. ``layer_name`` picks the feature map
    (a layer of the backbone, or of the model when it has no nested backbone)."""
    import keras
    import tensorflow as tf

    x = tf.convert_to_tensor(np.asarray(images, np.float32))
    if x.shape.rank != 4:
        raise ValueError(f"images must be (N, H, W, 3), got {tuple(x.shape)}")
    n, h, w = int(x.shape[0]), int(x.shape[1]), int(x.shape[2])
    if layer_name is None:
        container, feat_layer = find_feature_layer(model)
    else:
        try:
            container = model.get_layer("backbone")
        except ValueError:
            container = model
        try:
            feat_layer = container.get_layer(layer_name)
        except ValueError:
            raise MaskwatchError(f"no layer {layer_name!r} in {container.name}") from None
    grad_model = keras.Model(container.inputs, [feat_layer.output, container.outputs[0]])
    if container is model:
        before, after = [], []
    else:
        before, after = _outer_chain(model, container)
    last = after[-1] if after else None
    use_logits = isinstance(last, keras.layers.Dense) and getattr(last.activation, "__name__", "") == "softmax"
    with tf.GradientTape() as tape:
        h_ = x
        for layer in before:
            h_ = _call(layer, h_)
        feats, h_ = grad_model(h_, training=False)
        for layer in (after[:-1] if use_logits else after):
            h_ = _call(layer, h_)
        if use_logits:
            logits = tf.matmul(h_, last.kernel) + (last.bias if last.use_bias else 0.0)
            probs = tf.nn.softmax(logits, axis=-1)
        else:
            probs = h_
            logits = tf.math.log(tf.clip_by_value(probs, 1e-7, 1.0))
        if class_index is None:
            idx = tf.argmax(probs, axis=-1, output_type=tf.int32)
        else:
            idx = tf.broadcast_to(tf.convert_to_tensor(class_index, tf.int32), [n])
        score = tf.gather(logits, idx, axis=1, batch_dims=1)
    grads = tape.gradient(score, feats)
    if grads is None:
        raise MaskwatchError(f"no gradient from the class score to {feat_layer.name} (is the model differentiable?)")
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * feats, axis=-1)).numpy().astype(np.float32)
    heat = np.zeros((n, h, w), np.float32)
    for i in range(n):
        m = cv2.resize(cam[i], (w, h), interpolation=cv2.INTER_LINEAR)
        m = np.nan_to_num(np.clip(m, 0.0, None))
        top = float(m.max())
        if top > 0:
            heat[i] = m / top
    return np.clip(heat, 0.0, 1.0), np.asarray(probs, np.float32)


def grad_cam(model, images: np.ndarray, class_index=None, layer_name: str | None = None) -> np.ndarray:
    """Grad-CAM heat maps (N, H, W) float32 in [0, 1] at the input resolution (see :func:`grad_cam_with_probs`).

    >>> from train.models import build_model
    >>> grad_cam(build_model("lowres_cnn", 32, weights="none"), np.zeros((2, 32, 32, 3))).shape
    (2, 32, 32)
    """
    return grad_cam_with_probs(model, images, class_index, layer_name)[0]


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 image with a JET-coloured heat map blended on top."""
    colour = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    return np.uint8(np.clip((1 - alpha) * image.astype(np.float32) + alpha * colour, 0, 255))


def save_grid(images: np.ndarray, heats: np.ndarray, probs: np.ndarray, out: str | Path,
              rows: list[list[int]] | None = None, row_titles: list[str] | None = None,
              true_labels: list[int | None] | None = None, names: list[str] | None = None,
              title: str | None = None) -> Path:
    """PNG grid: for each image, the crop and its heat-map overlay titled with the predicted label and p.

    ``rows`` lists the image indices of each row (default: one image per row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rows or [[i] for i in range(len(images))]
    ncols = 2 * max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.7 * ncols, 1.95 * len(rows)), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, idx in enumerate(rows):
        for c, i in enumerate(idx):
            pred = int(np.argmax(probs[i]))
            a0, a1 = axes[r, 2 * c], axes[r, 2 * c + 1]
            a0.imshow(images[i])
            a1.imshow(overlay(images[i], heats[i]))
            short = LABELS[pred].replace("mask_worn_incorrectly", "incorrect").replace("_", " ")
            ok = ""
            if true_labels is not None and true_labels[i] is not None:
                ok = " ✓" if true_labels[i] == pred else " ✗"
            a1.set_title(f"{short} {probs[i][pred]:.2f}{ok}", fontsize=8,
                         color="black" if ok != " ✗" else "crimson")
            if names is not None:
                a0.set_title(Path(names[i]).name[:18], fontsize=6)
        if row_titles:
            axes[r, 0].text(-0.08, 0.5, row_titles[r], transform=axes[r, 0].transAxes, rotation=90,
                            ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def _read_images(paths: list[str | Path], size: int) -> tuple[np.ndarray, list[str]]:
    from train.evaluate import IMAGE_SUFFIXES, resize_crop

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise MaskwatchError(f"image not found: {p}")
    imgs, names, bad = [], [], 0
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            bad += 1
            continue
        imgs.append(resize_crop(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), size))
        names.append(str(f))
    if not imgs:
        raise MaskwatchError("no readable images given" + (f" ({bad} unreadable)" if bad else ""))
    if bad:
        log.warning("skipped %d unreadable images", bad)
    return np.stack(imgs), names


def explain(model_path: str | Path, out: str | Path, images: list[str] | None = None, data: str | None = None,
            per_class: int = 4, seed: int = 0, layer_name: str | None = None, target: str | None = None) -> Path:
    """Grad-CAM grid for ``images`` (one per row) or ``per_class`` random crops of each class in ``data``.

    ``target``: explain this label (e.g. ``without_mask``) instead of each image's predicted class."""
    from train.evaluate import load_keras_model, read_imagefolder

    model_path = Path(model_path)
    if model_path.suffix.lower() not in (".keras", ".h5"):
        raise MaskwatchError(f"Grad-CAM needs the float Keras model (.keras), not {model_path.name}")
    if (images is None) == (data is None):
        raise MaskwatchError("give either --images or --data")
    if per_class < 1:
        raise MaskwatchError("--per-class must be at least 1")
    class_index = None
    if target is not None:
        from train.evaluate import label_of_folder

        label = label_of_folder(target)
        if label is None:
            raise MaskwatchError(f"unknown class {target!r}; choose one of {', '.join(LABELS)}")
        class_index = LABELS.index(label)
    model = load_keras_model(model_path)
    size = int(model.input_shape[1])
    if images is not None:
        x, names = _read_images(images, size)
        truth = [None] * len(x)
        rows, titles = [list(range(i, min(i + 4, len(x)))) for i in range(0, len(x), 4)], None  # 4 a row
    else:
        ds = read_imagefolder(data, size=size)
        rng = np.random.default_rng(seed)
        picked, rows, titles = [], [], []
        for k, lab in enumerate(LABELS):
            idx = np.flatnonzero(ds.y == k)
            if len(idx) == 0:
                continue
            chosen = rng.choice(idx, size=min(per_class, len(idx)), replace=False)
            rows.append(list(range(len(picked), len(picked) + len(chosen))))
            titles.append(lab.replace("mask_worn_incorrectly", "incorrect").replace("_", " "))
            picked += [int(i) for i in chosen]
        from train.evaluate import resize_crop

        x = np.stack([resize_crop(ds.images[i], size) for i in picked])
        names = [ds.paths[i] for i in picked]
        truth = [int(ds.y[i]) for i in picked]
    heats, probs = grad_cam_with_probs(model, x, class_index=class_index, layer_name=layer_name)
    title = f"Grad-CAM of class {LABELS[class_index]}" if class_index is not None else \
        "Grad-CAM of the predicted class"
    return save_grid(x, heats, probs, out, rows, titles, truth, names, title=f"{model_path.name}: {title}")


def register(subparsers) -> None:
    """Add ``explain`` to ``maskwatch-train``'s sub-commands."""
    p = subparsers.add_parser("explain", help="Grad-CAM overlays of a .keras model as a PNG grid",
                              description="Grad-CAM heat maps (where the model looks) for chosen images or "
                                          "random crops of each class of an ImageFolder.")
    p.add_argument("--model", required=True, help="float Keras model (.keras) from maskwatch-train fit")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", nargs="+", help="face crops (files or folders); one row each")
    src.add_argument("--data", help="ImageFolder of face crops; --per-class random crops of each class")
    p.add_argument("--per-class", type=int, default=4, help="crops per class with --data (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed for picking crops (default 0)")
    p.add_argument("--layer", help="feature-map layer of the backbone (default: the last one at least 2x2)")
    p.add_argument("--class", dest="target", help="explain this class for every image (default: the predicted one)")
    p.add_argument("--out", required=True, help="output PNG")
    p.set_defaults(func=run)


def run(args) -> int:
    path = explain(args.model, args.out, images=args.images, data=args.data, per_class=args.per_class,
                   seed=args.seed, layer_name=args.layer, target=args.target)
    print(f"Grad-CAM grid written to {path}")
    return 0
