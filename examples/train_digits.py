"""Learn convolution filters with numbaconv and NumPy alone: a small CNN on the 8x8 digits.

The network, all of it forward *and* backward by numbaconv (the linear head
and the loss are two NumPy lines)::

    conv 3x3, 1 -> 16, + bias     (N, 16, 8, 8)
    relu, max_pool 2               (N, 16, 4, 4)
    depthwise-separable 3x3, 16 -> 32, + bias
    relu, max_pool 2               (N, 32, 2, 2)
    linear 128 -> 10, softmax cross-entropy

trained with Adam on scikit-learn's bundled digits (1,797 images, no
download), 80/20 split. It prints a progress bar, the test accuracy, and
writes ``digits_filters.png`` (the 16 learned first-layer filters) and
``digits_features.png`` (one test image and its 16 feature maps).

Run ``python examples/train_digits.py`` (``--epochs``, ``--out DIR``,
``--seed``); it needs ``pip install -e ".[examples]"`` for scikit-learn.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

import numbaconv as nc

F32 = np.float32


def load_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: images ``(N, 1, 8, 8)`` in [0, 1], float32."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(F32)[:, None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    cut = int(0.8 * len(y))
    return x[:cut], y[:cut], x[cut:], y[cut:]


def init_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """He-initialised weights, zero biases."""
    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(F32)

    return {
        "w1": he((16, 1, 3, 3), 9), "b1": np.zeros(16, F32),
        "dw": he((16, 1, 3, 3), 9), "pw": he((32, 16), 16), "b2": np.zeros(32, F32),
        "wl": he((128, 10), 128), "bl": np.zeros(10, F32),
    }


def forward(p: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, dict]:
    """Logits ``(N, 10)`` and what the backward pass needs."""
    z1 = nc.conv(x, p["w1"], p["b1"], padding=1)
    a1 = nc.relu(z1)
    h1 = nc.max_pool(a1, 2)
    z2 = nc.separable_conv(h1, p["dw"], p["pw"], p["b2"], padding=1)
    a2 = nc.relu(z2)
    h2 = nc.max_pool(a2, 2)
    flat = h2.reshape(len(x), -1)
    logits = flat @ p["wl"] + p["bl"]
    return logits, {"x": x, "z1": z1, "a1": a1, "h1": h1, "z2": z2, "a2": a2, "flat": flat}


def loss_and_grads(p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray
                   ) -> tuple[float, dict[str, np.ndarray]]:
    """Mean cross-entropy and its gradient with respect to every parameter."""
    logits, c = forward(p, x)
    prob = nc.softmax(logits, axis=1)
    n = len(y)
    loss = float(-np.log(prob[np.arange(n), y] + 1e-12).mean())
    g_logits = prob
    g_logits[np.arange(n), y] -= 1
    g_logits /= n
    g = {"wl": c["flat"].T @ g_logits, "bl": g_logits.sum(axis=0)}
    g_h2 = (g_logits @ p["wl"].T).reshape(n, 32, 2, 2)
    g_a2 = nc.max_pool_backward(g_h2, c["a2"], 2).input
    g_z2 = nc.relu_backward(g_a2, c["z2"]).input
    sep = nc.separable_conv_backward(g_z2, c["h1"], p["dw"], p["pw"], p["b2"], padding=1)
    g.update(dw=sep.depthwise_weight, pw=sep.pointwise_weight, b2=sep.bias)
    g_a1 = nc.max_pool_backward(sep.input, c["a1"], 2).input
    g_z1 = nc.relu_backward(g_a1, c["z1"]).input
    first = nc.conv_backward(g_z1, c["x"], p["w1"], p["b1"], padding=1,
                             input_grad=False)  # the first layer needs no input gradient
    g.update(w1=first.weight, b1=first.bias)
    return loss, g


class Adam:
    """Adam (Kingma & Ba), in place on a dict of arrays."""

    def __init__(self, params: dict[str, np.ndarray], lr: float = 0.01,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.lr, (self.b1, self.b2), self.eps, self.t = lr, betas, eps, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            params[k] -= (self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)
                          ).astype(F32)


def accuracy(p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    return float((forward(p, x)[0].argmax(axis=1) == y).mean())


def _bar(done: int, total: int, text: str) -> None:
    fill = 30 * done // total
    sys.stderr.write(f"\r[{'#' * fill}{'.' * (30 - fill)}] {done}/{total} {text}")
    sys.stderr.flush()


def train(epochs: int = 30, batch: int = 64, lr: float = 0.01, seed: int = 0,
          progress: bool = True) -> tuple[dict[str, np.ndarray], list[float], float]:
    """Train; return ``(params, mean loss per epoch, test accuracy)``."""
    xtr, ytr, xte, yte = load_data(seed)
    rng = np.random.default_rng(seed)
    params = init_params(rng)
    opt = Adam(params, lr)
    history = []
    for epoch in range(epochs):
        order = rng.permutation(len(ytr))
        losses = []
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss, grads = loss_and_grads(params, xtr[idx], ytr[idx])
            opt.step(params, grads)
            losses.append(loss)
        history.append(float(np.mean(losses)))
        if progress:
            _bar(epoch + 1, epochs, f"loss {history[-1]:.4f}")
    if progress:
        sys.stderr.write("\n")
    return params, history, accuracy(params, xte, yte)


def write_png(path: Path, img: np.ndarray) -> None:
    """A grayscale PNG of ``img`` (2-D, scaled to 0..255), by zlib alone."""
    lo, hi = float(img.min()), float(img.max())
    pix = np.round(255 * (img - lo) / (hi - lo if hi > lo else 1.0)).astype(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in pix)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", pix.shape[1], pix.shape[0], 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def tile(maps: np.ndarray, scale: int, cols: int) -> np.ndarray:
    """Maps ``(K, h, w)``, each normalised and enlarged ``scale`` times, on a grid."""
    k, h, w = maps.shape
    rows = -(-k // cols)
    pad = 2
    grid = np.full((rows * (h * scale + pad) + pad, cols * (w * scale + pad) + pad), 0.5)
    for i, m in enumerate(maps):
        m = (m - m.min()) / (np.ptp(m) or 1.0)
        r, c = divmod(i, cols)
        y0, x0 = pad + r * (h * scale + pad), pad + c * (w * scale + pad)
        grid[y0:y0 + h * scale, x0:x0 + w * scale] = np.kron(m, np.ones((scale, scale)))
    return grid


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("."))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    params, history, acc = train(args.epochs, seed=args.seed)
    seconds = time.perf_counter() - t0
    print(f"test accuracy {100 * acc:.2f}% after {args.epochs} epochs in {seconds:.1f} s "
          f"(loss {history[0]:.3f} -> {history[-1]:.3f})")
    args.out.mkdir(parents=True, exist_ok=True)
    write_png(args.out / "digits_filters.png", tile(params["w1"][:, 0], 12, 8))
    x = load_data(args.seed)[2][:1]
    maps = nc.relu(nc.conv(x, params["w1"], params["b1"], padding=1))[0]
    write_png(args.out / "digits_features.png",
              tile(np.concatenate([x[0], maps]), 12, 9))
    print(f"wrote {args.out / 'digits_filters.png'} and {args.out / 'digits_features.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
