#!/usr/bin/env python3
"""Writes PyTorch-style state dicts as safetensors files, with numpy and struct only (no torch).

Usage: /usr/bin/python3 scripts/make_torch_state_dict.py OUT_DIR [--seed S]

Writes into OUT_DIR, for each model below, <model>.safetensors (the state dict, byte for byte what
`safetensors.torch.save_file(model.state_dict(), path, metadata={"format": "pt"})` writes for it)
and <model>_io.safetensors ("input" and "output": a test input and the float64 forward output of
the model in eval mode, computed with numpy from the float32 weights):

  mlp      torch.nn.Sequential(Linear(6, 8), ReLU(), Linear(8, 3))
           keys 0.weight [8, 6], 0.bias [8], 2.weight [3, 8], 2.bias [3]; input [5, 6]
  convnet  features = Sequential(Conv2d(1, 3, 3, padding=1), BatchNorm2d(3), ReLU()),
           then flatten and fc = Linear(75, 4)
           keys features.0.weight [3, 1, 3, 3], features.0.bias, features.1.{weight, bias,
           running_mean, running_var} [3], features.1.num_batches_tracked [] (I64),
           fc.weight [4, 75], fc.bias [4]; input [2, 1, 5, 5]

Weights follow torch's default initialisation (uniform in +-1/sqrt(fan_in)); BatchNorm has
non-trivial running statistics (running_var in [0.5, 2]) as after training.

The safetensors layout written here (as the reference implementation writes it): an 8-byte
little-endian header length N, a compact JSON header ("__metadata__" first, then the tensors in
the order of their data: sorted by dtype, wider/later dtypes first -- I64 before F32 -- then by
name), padded with spaces to a multiple of 8 bytes, then the raw little-endian data.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

# The reference writer's dtype order (its Dtype enum); tensors are sorted by it, descending.
_DTYPE_RANK = {"BOOL": 0, "U8": 1, "I8": 2, "I16": 5, "U16": 6, "F16": 7, "BF16": 8, "I32": 9,
               "U32": 10, "F32": 11, "F64": 12, "I64": 13, "U64": 14}
_DTYPE_NAME = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int64"): "I64",
               np.dtype("uint8"): "U8"}


def save_file(tensors, path, metadata=None):
    """Writes {name: numpy array} as safetensors, ordered like the reference writer."""
    items = sorted(tensors.items(),
                   key=lambda kv: (-_DTYPE_RANK[_DTYPE_NAME[kv[1].dtype]], kv[0]))
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name, arr in items:
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPE_NAME[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def linear_params(rng, fan_in, fan_out):
    bound = 1.0 / np.sqrt(fan_in)
    w = rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(np.float32)  # [out, in]
    b = rng.uniform(-bound, bound, size=(fan_out,)).astype(np.float32)
    return w, b


def conv2d(x, w, b, padding):
    """x [N, C, H, W], w [O, C, k, k] (groups 1, stride 1) -> [N, O, H', W'] in float64."""
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = h + 2 * padding - k + 1, wd + 2 * padding - k + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i:i + k, j:j + k]  # [N, C, k, k]
            out[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w)
    return out + b.reshape(1, o, 1, 1)


def make_mlp(rng):
    w0, b0 = linear_params(rng, 6, 8)
    w2, b2 = linear_params(rng, 8, 3)
    state = {"0.weight": w0, "0.bias": b0, "2.weight": w2, "2.bias": b2}
    x = rng.uniform(-1.0, 1.0, size=(5, 6))
    f = {k: v.astype(np.float64) for k, v in state.items()}
    h = np.maximum(x @ f["0.weight"].T + f["0.bias"], 0.0)
    y = h @ f["2.weight"].T + f["2.bias"]
    return state, x, y


def make_convnet(rng):
    bound = 1.0 / np.sqrt(1 * 3 * 3)
    cw = rng.uniform(-bound, bound, size=(3, 1, 3, 3)).astype(np.float32)
    cb = rng.uniform(-bound, bound, size=(3,)).astype(np.float32)
    bn_w = rng.uniform(0.5, 1.5, size=(3,)).astype(np.float32)
    bn_b = rng.uniform(-0.5, 0.5, size=(3,)).astype(np.float32)
    bn_mean = rng.uniform(-0.3, 0.3, size=(3,)).astype(np.float32)
    bn_var = rng.uniform(0.5, 2.0, size=(3,)).astype(np.float32)
    fw, fb = linear_params(rng, 75, 4)
    state = {
        "features.0.weight": cw, "features.0.bias": cb,
        "features.1.weight": bn_w, "features.1.bias": bn_b,
        "features.1.running_mean": bn_mean, "features.1.running_var": bn_var,
        "features.1.num_batches_tracked": np.array(7, dtype=np.int64),
        "fc.weight": fw, "fc.bias": fb,
    }
    x = rng.uniform(-1.0, 1.0, size=(2, 1, 5, 5))
    f = {k: v.astype(np.float64) for k, v in state.items()}
    h = conv2d(x, f["features.0.weight"], f["features.0.bias"], padding=1)
    eps = 1e-5
    scale = f["features.1.weight"] / np.sqrt(f["features.1.running_var"] + eps)
    h = (h - f["features.1.running_mean"].reshape(1, 3, 1, 1)) * scale.reshape(1, 3, 1, 1) \
        + f["features.1.bias"].reshape(1, 3, 1, 1)
    h = np.maximum(h, 0.0).reshape(2, 75)
    y = h @ f["fc.weight"].T + f["fc.bias"]
    return state, x, y


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=20240611)
    args = parser.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for name, make in (("mlp", make_mlp), ("convnet", make_convnet)):
        state, x, y = make(rng)
        save_file(state, os.path.join(args.out_dir, name + ".safetensors"), {"format": "pt"})
        save_file({"input": x.astype(np.float64), "output": y.astype(np.float64)},
                  os.path.join(args.out_dir, name + "_io.safetensors"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
