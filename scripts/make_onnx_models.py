#!/usr/bin/python3
"""Small ONNX test models for veil's importer, with float64 reference outputs.

Run with Debian's interpreter, which has python3-onnx and python3-numpy:
    /usr/bin/python3 scripts/make_onnx_models.py --out DIR [--seed 7]

For each model NAME it writes DIR/NAME.onnx (random float32 weights, opset 13 or 17, checked with
onnx.checker) and DIR/NAME.safetensors holding two float64 tensors, "input" and "output" (the
model's output computed here in float64 numpy from the same float32 weights), and metadata:
  tol_public, tol_secret  tolerances for max |veil - reference| (see below), as decimal strings;
  worst_*, rms_*          the two error estimates they come from.
Models: mlp (Gemm, MatMul+Add, Relu, Tanh, Softmax), lenet (Conv, BatchNormalization, Relu,
MaxPool, Flatten, Gemm), resnet (Conv-BN-Relu, residual Add, strided and 1x1 convolutions,
GlobalAveragePool, Flatten, Gemm), misc (Pad, AveragePool, Transpose, Reshape, LayerNormalization,
ReduceMean, Unsqueeze, Concat, Flatten, Slice, Div, Clip, LeakyRelu, Erf, Sigmoid, Mul, Gemm, Sub,
Constant), misc2 (opset 11 forms: legacy Softmax over the flattened trailing dims, Squeeze,
Unsqueeze and ReduceSum axes and Dropout's ratio as attributes; Conv with groups, dilations,
strides and asymmetric pads; MaxPool with pads; ConvTranspose; AveragePool counting its padding;
GlobalMaxPool, Pow, HardSigmoid, Gather, Neg, Abs, Sum, Cast, Identity), plus unsupported.onnx
(Conv with auto_pad SAME_UPPER, MaxPool with ceil_mode 1, LSTM, Einsum: veil must refuse it
listing all four) and old_opset.onnx (opset 7).

Error bounds. veil encodes reals as fixed point with f = 16 fractional bits (u = 2^-16): every
weight and input is rounded to the nearest multiple of u (error <= u/2), every product of two
encodings is truncated once (error <= u), and public transcendental functions are computed in
float64 on the decoded input and rounded (error <= u/2). Each op below propagates a bound on the
absolute error of its output from the bound e on its inputs (first-order terms):
  linear (Gemm, MatMul, Conv):  |W|-weighted sum of input errors + (sum |x| over the window) u/2
                                 (weight rounding) + u (truncation) + u/2 (bias rounding);
  Relu, MaxPool, Clip, reshapes: e (exact on the encodings);
  average pools, ReduceMean:     e + (sum |x| over the window) u/2 + u (1/d rounded, truncation);
  BatchNormalization (eval):     |gamma| (inv e + |x - mean| d_inv + u) + |x_hat| u/2 + 3u/2,
                                 d_inv the error of 1/sqrt(var + eps) (rounding, and eps = 1e-5
                                 rounding to u);
  LayerNormalization:            the same with the row statistics' rounding added;
  sigmoid, tanh, erf, softmax:   L e + u/2 with L their Lipschitz constant (1/4, 1, 2/sqrt(pi), 1);
  Mul, Div by a constant:        |c| e + |x| u/2 + u.
Secret evaluation adds the documented contracts of veil's approximations (docs/protocols.md):
sigmoid 2e-3, tanh 4e-3, softmax 1e-3, erf 1e-3 absolute, inv_sqrt 1e-3 relative (BatchNorm and
LayerNorm with secret statistics). Each rule is evaluated twice: as a first-order worst-case
bound ("worst": input errors add with |W|, i.e. all aligned) and as an estimate for independent
rounding errors ("rms": input errors add in quadrature with W^2). The worst case grows like
sqrt(fan-in) per layer faster than the errors really do, so deep nets get
tolerance = min(worst-case bound, 4 x rms estimate); tests/models/test_onnx.cpp checks
max |veil - reference| <= tolerance.
"""

import argparse
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_torch_state_dict import save_file  # noqa: E402  (the one safetensors writer)

U = 2.0 ** -16  # one fixed-point unit at f = 16

# Documented accuracy contracts of veil's secret approximations (docs/protocols.md).
SECRET_SIGMOID = 2e-3
SECRET_TANH = 4e-3
SECRET_SOFTMAX = 1e-3
SECRET_ERF = 1e-3
SECRET_INV_SQRT_REL = 1e-3


class T:
    """A float64 value with error estimates: err[(mode, secret)] for mode "worst" (a first-order
    bound) or "rms" (independent rounding errors), public (False) or secret (True) evaluation."""

    KEYS = (("worst", False), ("worst", True), ("rms", False), ("rms", True))

    def __init__(self, v, err=None):
        self.v = np.asarray(v, dtype=np.float64)
        self.err = dict(err) if err is not None else {k: U / 2 for k in T.KEYS}

    def then(self, v, f):
        """A new value whose error is f(e, mode, secret) of this one's."""
        return T(v, {(m, s): float(f(self.err[(m, s)], m, s)) for (m, s) in T.KEYS})

    def tol(self):
        """The test tolerance: the first-order bound, or 4x the rms estimate when smaller."""
        return (min(self.err[("worst", False)], 4 * self.err[("rms", False)]),
                min(self.err[("worst", True)], 4 * self.err[("rms", True)]))


class Net:
    """Collects ONNX nodes and initializers while computing the reference forward."""

    def __init__(self, rng):
        self.rng = rng
        self.nodes = []
        self.inits = []
        self.count = 0

    def name(self, base):
        self.count += 1
        return "%s_%d" % (base, self.count)

    def init(self, name, arr, dtype=np.float32):
        arr = np.asarray(arr).astype(dtype)
        self.inits.append(numpy_helper.from_array(arr, name))
        return arr.astype(np.float64) if dtype == np.float32 else arr

    def uniform(self, name, shape, bound):
        return self.init(name, self.rng.uniform(-bound, bound, size=shape))

    def node(self, op, inputs, name, **attrs):
        out = name + "_out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def const(self, name, value, dtype=np.float32):
        arr = np.asarray(value, dtype=dtype)
        self.nodes.append(helper.make_node("Constant", [], [name + "_out"], name=name,
                                           value=numpy_helper.from_array(arr, name + "_value")))
        return name + "_out", arr.astype(np.float64)


# ---- numpy reference ops with error propagation ---------------------------------------------

def combine(mode, terms):
    """Adds independent error terms: plainly ("worst") or in quadrature ("rms")."""
    terms = [float(t) for t in terms]
    return sum(terms) if mode == "worst" else math.sqrt(sum(t * t for t in terms))


def lin(x, y, apply_abs, apply_sq, w_abs_sum, bias):
    """A linear op y = L_W(x) (+ b). apply_abs(a) applies |W| to a, apply_sq(a) applies W^2;
    w_abs_sum(a) sums a over each output's window with unit weights."""
    xa = np.abs(x.v)

    def f(e, mode, secret):
        if mode == "worst":
            prop = np.max(apply_abs(np.full_like(x.v, e)))
            wround = np.max(w_abs_sum(xa)) * U / 2
        else:
            prop = math.sqrt(np.max(apply_sq(np.full_like(x.v, e * e))))
            wround = math.sqrt(np.max(w_abs_sum(xa * xa))) * U / 2
        return prop + combine(mode, [wround, U] + ([U / 2] if bias else []))
    return x.then(y, f)


def gemm(x, w, b, trans_b=True, alpha=1.0, beta=1.0):
    """x [N, K]; w [out, K] (trans_b) or [K, out]; b [out] or None."""
    wm = w.T if trans_b else w
    prod = x.v @ wm
    y = alpha * prod + (beta * b if b is not None else 0.0)
    t = lin(x, prod, lambda a: a @ np.abs(wm), lambda a: a @ (wm * wm),
            lambda a: a @ np.ones_like(wm), False)

    def f(e, mode, secret):
        # alpha and beta are public products: rounding of the constant and a truncation each;
        # C is rounded to the grid.
        terms = []
        if alpha != 1.0:
            terms += [np.max(np.abs(prod)) * U / 2, U]
        if b is not None:
            terms += [U / 2]
            if beta != 1.0:
                terms += [np.max(np.abs(b)) * U / 2, U]
        return abs(alpha) * e + combine(mode, terms)
    return t.then(y, f)


def windows(xv, kh, kw, stride, pads, dil, fill):
    """Yields (u, v, patch): the input element at window offset (u, v) of every output position,
    for pads (top, left, bottom, right) filled with `fill`."""
    xp = np.pad(xv, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])),
                constant_values=fill)
    ho = (xp.shape[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (xp.shape[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    for u in range(kh):
        for v in range(kw):
            r0, c0 = u * dil[0], v * dil[1]
            yield u, v, xp[:, :, r0:r0 + stride[0] * (ho - 1) + 1:stride[0],
                           c0:c0 + stride[1] * (wo - 1) + 1:stride[1]]


def conv2d(x, w, b=None, stride=1, pad=0, pads=None, dil=(1, 1), group=1):
    """x [N, C, H, W] (*) w [O, C/group, kh, kw] -> [N, O, H', W'] (ONNX Conv semantics)."""
    st = stride if isinstance(stride, tuple) else (stride, stride)
    pd = pads if pads is not None else (pad,) * 4

    def raw(xv, wv):
        o, cg, kh, kw = wv.shape
        og = o // group
        out = None
        for u, v, patch in windows(xv, kh, kw, st, pd, dil, 0.0):
            part = np.concatenate([np.einsum("nchw,oc->nohw", patch[:, g * cg:(g + 1) * cg],
                                             wv[g * og:(g + 1) * og, :, u, v])
                                   for g in range(group)], axis=1)
            out = part if out is None else out + part
        return out
    y = raw(x.v, w)
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return lin(x, y, lambda a: raw(a, np.abs(w)), lambda a: raw(a, w * w),
               lambda a: raw(a, np.ones_like(w)), b is not None)


def conv_transpose2d(x, w, stride=2):
    """x [N, C, H, W], w [C, O, k, k] -> [N, O, (H - 1) s + k, (W - 1) s + k] (no pads)."""
    def raw(xv, wv):
        n, c, h, ww = xv.shape
        _, o, k, _ = wv.shape
        out = np.zeros((n, o, (h - 1) * stride + k, (ww - 1) * stride + k))
        for u in range(k):
            for v in range(k):
                out[:, :, u:u + stride * h:stride, v:v + stride * ww:stride] += np.einsum(
                    "nchw,co->nohw", xv, wv[:, :, u, v])
        return out
    return lin(x, raw(x.v, w), lambda a: raw(a, np.abs(w)), lambda a: raw(a, w * w),
               lambda a: raw(a, np.ones_like(w)), False)


def relu(x):
    return x.then(np.maximum(x.v, 0.0), lambda e, m, s: e)


def maxpool(x, k=2, s=2, pads=(0, 0, 0, 0), dil=(1, 1)):
    out = None
    for _, _, patch in windows(x.v, k, k, (s, s), pads, dil, -np.inf):
        out = patch if out is None else np.maximum(out, patch)
    return x.then(out, lambda e, m, sec: e)


def mean_like(x, v, window_abs_sum):
    """An average over windows: the sum is exact, 1/d is rounded (u/2 relative to the sum) and
    the product truncated; input errors average (not amplified)."""
    extra = float(np.max(window_abs_sum)) * U / 2
    return x.then(v, lambda e, m, s: e + combine(m, [extra, U]))


def avgpool(x, k=2, s=2, pad=0):
    """count_include_pad = 1 (zeros counted) when pad > 0."""
    acc = 0.0
    acc_abs = 0.0
    for _, _, patch in windows(x.v, k, k, (s, s), (pad,) * 4, (1, 1), 0.0):
        acc = acc + patch
        acc_abs = acc_abs + np.abs(patch)
    return mean_like(x, acc / (k * k), acc_abs)


def global_avgpool(x):
    return mean_like(x, np.mean(x.v, axis=(2, 3), keepdims=True),
                     np.sum(np.abs(x.v), axis=(2, 3)))


def inv_sqrt_err(var, eps, secret):
    inv = 1.0 / np.sqrt(var + eps)
    # rounding of var and of eps (eps = 1e-5 encodes as u), then of the result
    d = 0.5 * inv ** 3 * (U / 2 + abs(U - eps)) + U / 2
    if secret:
        d = d + SECRET_INV_SQRT_REL * inv + U
    return inv, d


def batchnorm(x, gamma, beta, mean, var, eps=1e-5):
    shape = (1, -1) + (1,) * (x.v.ndim - 2)
    g, b, m, v = (a.reshape(shape) for a in (gamma, beta, mean, var))
    d = x.v - m
    inv = 1.0 / np.sqrt(v + eps)
    xh = d * inv
    y = xh * g + b

    def f(e, mode, secret):
        inv_, dinv = inv_sqrt_err(v, eps, secret)
        e_xh = (e + U / 2) * inv_ + np.abs(d) * dinv + U
        return np.max(np.abs(g) * e_xh + np.abs(xh) * U / 2 + 1.5 * U)
    return x.then(y, f)


def layernorm(x, gamma, beta, eps=1e-5):
    m = x.v.mean(axis=-1, keepdims=True)
    d = x.v - m
    var = (d ** 2).mean(axis=-1, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xh = d * inv
    y = xh * gamma + beta

    def f(e, mode, secret):
        # mean and variance are computed on the encodings with a few truncations each
        e_d = 2 * e + 3 * U
        e_var = 2 * np.abs(d).max(axis=-1, keepdims=True) * e_d + 3 * U
        inv_, dinv = inv_sqrt_err(var, eps, secret)
        dinv = dinv + 0.5 * inv_ ** 3 * e_var
        e_xh = e_d * inv_ + np.abs(d) * dinv + U
        return np.max(np.abs(gamma) * e_xh + np.abs(xh) * U / 2 + 1.5 * U)
    return x.then(y, f)


def smooth(x, fn, lip, secret_err):
    return x.then(fn(x.v), lambda e, m, s: lip * e + U / 2 + (secret_err if s else 0.0))


def sigmoid(x):
    return smooth(x, lambda a: 1 / (1 + np.exp(-a)), 0.25, SECRET_SIGMOID)


def tanh(x):
    return smooth(x, np.tanh, 1.0, SECRET_TANH)


def erf(x):
    return smooth(x, np.vectorize(math.erf), 2 / math.sqrt(math.pi), SECRET_ERF)


def softmax(x, axis=-1):
    z = np.exp(x.v - x.v.max(axis=axis, keepdims=True))
    return smooth(x, lambda a: z / z.sum(axis=axis, keepdims=True), 1.0, SECRET_SOFTMAX)


def add(a, b):
    return T(a.v + b.v, {k: a.err[k] + b.err[k] for k in T.KEYS})


def mul_const(x, c):
    c = np.asarray(c, dtype=np.float64)
    extra = float(np.max(np.abs(x.v))) * U / 2
    cm = float(np.max(np.abs(c)))
    return x.then(x.v * c, lambda e, m, s: cm * e + combine(m, [extra, U]))


def mul(a, b):
    """Both operands computed (secret x secret in secret mode)."""
    ma, mb = float(np.max(np.abs(a.v))), float(np.max(np.abs(b.v)))
    return T(a.v * b.v, {k: ma * b.err[k] + mb * a.err[k] + U for k in T.KEYS})


def same(x, v):
    return x.then(v, lambda e, m, s: e)


# ---- models ---------------------------------------------------------------------------------

def model_proto(net, inputs, outputs, opset, name):
    graph = helper.make_graph(net.nodes, name, inputs, outputs, initializer=net.inits)
    model = helper.make_model(graph, producer_name="veil-make_onnx_models",
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset >= 13 else (6 if opset >= 11 else 3)
    return model


def make_mlp(rng):
    net = Net(rng)
    n, k = 3, 12
    x = T(rng.uniform(-2, 2, size=(n, k)))
    w1 = net.uniform("fc1.weight", (16, k), 1 / math.sqrt(k))
    b1 = net.uniform("fc1.bias", (16,), 1 / math.sqrt(k))
    h = net.node("Gemm", ["x", "fc1.weight", "fc1.bias"], "fc1", transB=1)
    t = relu(gemm(x, w1, b1))
    h = net.node("Relu", [h], "relu1")
    w2 = net.uniform("fc2.weight", (16, 10), 1 / 4)   # used by MatMul: [in, out]
    b2 = net.uniform("fc2.bias", (10,), 1 / 4)
    h = net.node("MatMul", [h, "fc2.weight"], "fc2_matmul")
    h = net.node("Add", [h, "fc2.bias"], "fc2_add")
    t = tanh(gemm(t, w2, b2, trans_b=False))
    h = net.node("Tanh", [h], "tanh")
    w3 = net.uniform("fc3.weight", (10, 6), 1 / math.sqrt(10))
    b3 = net.uniform("fc3.bias", (6,), 1 / math.sqrt(10))
    h = net.node("Gemm", [h, "fc3.weight", "fc3.bias"], "fc3", alpha=0.5, beta=2.0)
    t = gemm(t, w3, b3, trans_b=False, alpha=0.5, beta=2.0)
    net.nodes.append(helper.make_node("Softmax", [h], ["probs"], name="softmax", axis=1))
    t = softmax(t)
    inp = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", k])]
    out = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 6])]
    return model_proto(net, inp, out, 13, "mlp"), x.v, t


def bn_params(net, prefix, c):
    g = net.init(prefix + ".weight", net.rng.uniform(0.5, 1.5, size=c))
    b = net.init(prefix + ".bias", net.rng.uniform(-0.2, 0.2, size=c))
    m = net.init(prefix + ".running_mean", net.rng.uniform(-0.3, 0.3, size=c))
    v = net.init(prefix + ".running_var", net.rng.uniform(0.5, 2.0, size=c))
    names = [prefix + s for s in (".weight", ".bias", ".running_mean", ".running_var")]
    return (g, b, m, v), names


def conv_bn(net, h, t, prefix_conv, prefix_bn, cin, cout, k, stride, pad, relu_after=True):
    w = net.uniform(prefix_conv + ".weight", (cout, cin, k, k), 1 / math.sqrt(cin * k * k))
    h = net.node("Conv", [h, prefix_conv + ".weight"], prefix_conv.replace(".", "_"),
                 kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)
    t = conv2d(t, w, stride=stride, pad=pad)
    (g, b, m, v), names = bn_params(net, prefix_bn, cout)
    h = net.node("BatchNormalization", [h] + names, prefix_bn.replace(".", "_"), epsilon=1e-5)
    t = batchnorm(t, g, b, m, v)
    if relu_after:
        h = net.node("Relu", [h], net.name("relu"))
        t = relu(t)
    return h, t


def make_lenet(rng):
    net = Net(rng)
    x = T(rng.uniform(0, 1, size=(2, 1, 12, 12)))
    w1 = net.uniform("conv1.weight", (4, 1, 3, 3), 1 / 3)
    b1 = net.uniform("conv1.bias", (4,), 1 / 3)
    h = net.node("Conv", ["x", "conv1.weight", "conv1.bias"], "conv1", kernel_shape=[3, 3],
                 pads=[1, 1, 1, 1])
    t = conv2d(x, w1, b1, pad=1)
    (g, b, m, v), names = bn_params(net, "bn1", 4)
    h = net.node("BatchNormalization", [h] + names, "bn1")
    t = batchnorm(t, g, b, m, v)
    h = net.node("Relu", [h], "relu1")
    h = net.node("MaxPool", [h], "pool1", kernel_shape=[2, 2], strides=[2, 2])
    t = maxpool(relu(t))
    h, t = conv_bn(net, h, t, "conv2", "bn2", 4, 6, 3, 1, 0)
    h = net.node("MaxPool", [h], "pool2", kernel_shape=[2, 2], strides=[2, 2])
    t = maxpool(t)
    h = net.node("Flatten", [h], "flatten", axis=1)
    t = same(t, t.v.reshape(t.v.shape[0], -1))
    w3 = net.uniform("fc1.weight", (10, 24), 1 / math.sqrt(24))
    b3 = net.uniform("fc1.bias", (10,), 1 / math.sqrt(24))
    h = net.node("Gemm", [h, "fc1.weight", "fc1.bias"], "fc1", transB=1)
    t = relu(gemm(t, w3, b3))
    h = net.node("Relu", [h], "relu3")
    w4 = net.uniform("fc2.weight", (5, 10), 1 / math.sqrt(10))
    b4 = net.uniform("fc2.bias", (5,), 1 / math.sqrt(10))
    net.nodes.append(helper.make_node("Gemm", [h, "fc2.weight", "fc2.bias"], ["logits"],
                                      name="fc2", transB=1))
    t = gemm(t, w4, b4)
    inp = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 12, 12])]
    out = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])]
    return model_proto(net, inp, out, 13, "lenet"), x.v, t


def make_resnet(rng):
    net = Net(rng)
    x = T(rng.uniform(-1, 1, size=(2, 3, 8, 8)))
    h, t = conv_bn(net, "x", x, "stem.conv", "stem.bn", 3, 8, 3, 1, 1)
    # block 1: identity shortcut
    skip_h, skip_t = h, t
    h, t = conv_bn(net, h, t, "layer1.0.conv1", "layer1.0.bn1", 8, 8, 3, 1, 1)
    h, t = conv_bn(net, h, t, "layer1.0.conv2", "layer1.0.bn2", 8, 8, 3, 1, 1, relu_after=False)
    h = net.node("Add", [h, skip_h], "layer1_add")
    t = add(t, skip_t)
    h = net.node("Relu", [h], "layer1_relu")
    t = relu(t)
    # block 2: stride 2 with a 1x1 projection shortcut
    skip_h, skip_t = conv_bn(net, h, t, "layer2.0.downsample.0", "layer2.0.downsample.1", 8, 12,
                             1, 2, 0, relu_after=False)
    h, t = conv_bn(net, h, t, "layer2.0.conv1", "layer2.0.bn1", 8, 12, 3, 2, 1)
    h, t = conv_bn(net, h, t, "layer2.0.conv2", "layer2.0.bn2", 12, 12, 3, 1, 1, relu_after=False)
    h = net.node("Add", [h, skip_h], "layer2_add")
    t = add(t, skip_t)
    h = net.node("Relu", [h], "layer2_relu")
    t = relu(t)
    h = net.node("GlobalAveragePool", [h], "avgpool")
    t = global_avgpool(t)
    h = net.node("Flatten", [h], "flatten", axis=1)
    t = same(t, t.v.reshape(t.v.shape[0], -1))
    w = net.uniform("fc.weight", (4, 12), 1 / math.sqrt(12))
    b = net.uniform("fc.bias", (4,), 1 / math.sqrt(12))
    net.nodes.append(helper.make_node("Gemm", [h, "fc.weight", "fc.bias"], ["logits"], name="fc",
                                      transB=1))
    t = gemm(t, w, b)
    inp = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])]
    out = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])]
    return model_proto(net, inp, out, 13, "resnet"), x.v, t


def make_misc(rng):
    net = Net(rng)
    x = T(rng.uniform(-2, 2, size=(2, 4, 6, 6)))
    net.init("pad.pads", np.array([0, 0, 1, 1, 0, 0, 1, 1]), np.int64)
    net.init("pad.value", np.array(0.5), np.float32)
    h = net.node("Pad", ["x", "pad.pads", "pad.value"], "pad", mode="constant")
    t = same(x, np.pad(x.v, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=0.5))
    h = net.node("AveragePool", [h], "avgpool", kernel_shape=[2, 2], strides=[2, 2])
    t = avgpool(t)                                                   # [2, 4, 4, 4]
    h = net.node("Transpose", [h], "transpose", perm=[0, 2, 3, 1])
    t = same(t, t.v.transpose(0, 2, 3, 1))
    net.init("reshape.shape", np.array([0, 4, 16]), np.int64)
    h = net.node("Reshape", [h, "reshape.shape"], "reshape")
    t = same(t, t.v.reshape(2, 4, 16))
    g = net.init("ln.weight", rng.uniform(0.5, 1.5, size=16))
    b = net.init("ln.bias", rng.uniform(-0.2, 0.2, size=16))
    h = net.node("LayerNormalization", [h, "ln.weight", "ln.bias"], "ln", axis=-1, epsilon=1e-5)
    t = layernorm(t, g, b)
    h = net.node("ReduceMean", [h], "mean", axes=[1], keepdims=0)
    t = mean_like(t, t.v.mean(axis=1), np.sum(np.abs(t.v), axis=1))  # [2, 16]
    net.init("unsqueeze.axes", np.array([1]), np.int64)
    u = net.node("Unsqueeze", [h, "unsqueeze.axes"], "unsqueeze")
    tu = same(t, t.v[:, None, :])                                     # [2, 1, 16]
    two, two_v = net.const("two", 2.0)
    u2 = net.node("Mul", [u, two], "double")
    tu2 = mul_const(tu, two_v)
    h = net.node("Concat", [u, u2], "concat", axis=1)
    t = T(np.concatenate([tu.v, tu2.v], axis=1), {k: max(tu.err[k], tu2.err[k]) for k in T.KEYS})
    h = net.node("Flatten", [h], "flatten", axis=1)
    t = same(t, t.v.reshape(2, 32))
    net.init("slice.starts", np.array([1]), np.int64)
    net.init("slice.ends", np.array([7]), np.int64)
    net.init("slice.axes", np.array([1]), np.int64)
    h = net.node("Slice", [h, "slice.starts", "slice.ends", "slice.axes"], "slice")
    t = same(t, t.v[:, 1:7])                                          # [2, 6]
    div = net.init("div.divisor", np.array(0.8))
    h = net.node("Div", [h, "div.divisor"], "div")
    t = mul_const(t, 1.0 / div)
    lo, _ = net.const("clip_min", -1.5)
    hi, _ = net.const("clip_max", 1.5)
    h = net.node("Clip", [h, lo, hi], "clip")
    t = same(t, np.clip(t.v, -1.5, 1.5))
    h = net.node("LeakyRelu", [h], "leaky", alpha=0.1)
    extra = np.max(np.abs(t.v)) * U / 2
    t = t.then(np.where(t.v > 0, t.v, 0.1 * t.v), lambda e, m, s: e + combine(m, [extra, U]))
    e = net.node("Erf", [h], "erf")
    te = erf(t)
    s = net.node("Sigmoid", [h], "sigmoid")
    ts = sigmoid(t)
    h = net.node("Mul", [e, s], "gate")
    t = mul(te, ts)
    w = net.uniform("head.weight", (6, 3), 1 / math.sqrt(6))
    b = net.uniform("head.bias", (3,), 1 / math.sqrt(6))
    h = net.node("Gemm", [h, "head.weight", "head.bias"], "head")
    t = gemm(t, w, b, trans_b=False)
    off, off_v = net.const("offset", np.array([0.25, -0.5, 1.0]))
    net.nodes.append(helper.make_node("Sub", [h, off], ["y"], name="sub"))
    t = t.then(t.v - off_v, lambda e, m, s: e + U / 2)
    inp = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 6, 6])]
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])]
    return model_proto(net, inp, out, 17, "misc"), x.v, t


def make_misc2(rng):
    """Opset 11 forms (legacy Softmax, Squeeze/Unsqueeze and ReduceSum axes as attributes,
    Dropout's ratio attribute) and the general spatial attributes."""
    net = Net(rng)
    x = T(rng.uniform(-1, 1, size=(2, 4, 7, 7)))
    w = net.uniform("conv.weight", (6, 2, 3, 3), 1 / math.sqrt(18))
    b = net.uniform("conv.bias", (6,), 0.2)
    h = net.node("Conv", ["x", "conv.weight", "conv.bias"], "conv", group=2, pads=[1, 0, 2, 1],
                 strides=[2, 1], dilations=[1, 2])
    t = relu(conv2d(x, w, b, stride=(2, 1), pads=(1, 0, 2, 1), dil=(1, 2), group=2))
    h = net.node("Relu", [h], "relu")                                   # [2, 6, 4, 4]
    h = net.node("MaxPool", [h], "maxpool", kernel_shape=[3, 3], strides=[1, 1],
                 pads=[1, 1, 1, 1])
    t = maxpool(t, k=3, s=1, pads=(1, 1, 1, 1))
    wt = net.uniform("deconv.weight", (6, 2, 2, 2), 1 / math.sqrt(24))
    h = net.node("ConvTranspose", [h, "deconv.weight"], "deconv", strides=[2, 2])
    t = conv_transpose2d(t, wt, stride=2)                                # [2, 2, 8, 8]
    ct_h, ct_t = h, t
    g = net.node("GlobalMaxPool", [ct_h], "gmp")
    tg = same(ct_t, ct_t.v.max(axis=(2, 3), keepdims=True))
    sq = net.node("Squeeze", [g], "squeeze", axes=[2, 3])
    tsq = same(tg, tg.v.reshape(2, 2))                                   # [2, 2]
    net.init("pow.exponent", np.array(2.0))
    p2 = net.node("Pow", [sq, "pow.exponent"], "square")
    tp2 = mul(tsq, tsq)
    hs = net.node("HardSigmoid", [sq], "hardsigmoid", alpha=0.3, beta=0.4)
    ths = tsq.then(np.clip(0.3 * tsq.v + 0.4, 0, 1),
                   lambda e, m, s: 0.3 * e + combine(m, [np.max(np.abs(tsq.v)) * U / 2, U, U / 2]))
    u = net.node("Concat", [p2, hs], "concat", axis=1)
    tu = T(np.concatenate([tp2.v, ths.v], axis=1), {k: max(tp2.err[k], ths.err[k]) for k in T.KEYS})
    a = net.node("AveragePool", [ct_h], "avgpool", kernel_shape=[3, 3], strides=[2, 2],
                 pads=[1, 1, 1, 1], count_include_pad=1)
    ta = avgpool(ct_t, k=3, s=2, pad=1)                                  # [2, 2, 4, 4]
    sm = net.node("Softmax", [a], "softmax", axis=1)  # opset 11: over the 32 trailing values
    flat = ta.v.reshape(2, 32)
    z = np.exp(flat - flat.max(axis=1, keepdims=True))
    tsm = ta.then((z / z.sum(axis=1, keepdims=True)).reshape(2, 2, 4, 4),
                  lambda e, m, s: e + U / 2 + (SECRET_SOFTMAX if s else 0.0))
    fl = net.node("Flatten", [sm], "flatten", axis=1)
    net.init("gather.indices", np.array([0, 5, 31, 17]), np.int64)
    ga = net.node("Gather", [fl, "gather.indices"], "gather", axis=1)
    tga = same(tsm, tsm.v.reshape(2, 32)[:, [0, 5, 31, 17]])            # [2, 4]
    eight, eight_v = net.const("eight", 8.0)
    g8 = net.node("Mul", [ga, eight], "scale")
    tg8 = mul_const(tga, eight_v)
    ng = net.node("Neg", [net.node("Abs", [g8], "abs")], "neg")
    tng = same(tg8, -np.abs(tg8.v))
    total = net.node("Sum", [u, g8, ng], "sum")
    tt = add(add(tu, tg8), tng)
    rs = net.node("ReduceSum", [total], "rowsum", axes=[1], keepdims=1)
    trs = T(tt.v.sum(axis=1, keepdims=True), {k: 4 * tt.err[k] for k in T.KEYS})
    y = net.node("Add", [total, rs], "add")
    ty = add(tt, trs)
    c = net.node("Cast", [y], "cast", to=TensorProto.FLOAT)
    d = net.node("Dropout", [net.node("Identity", [c], "identity")], "dropout", ratio=0.3)
    net.nodes.append(helper.make_node("Unsqueeze", [d], ["y"], name="unsqueeze", axes=[0]))
    t = same(ty, ty.v[None])
    inp = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 7, 7])]
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "N", 4])]
    return model_proto(net, inp, out, 11, "misc2"), x.v, t


def make_unsupported(rng):
    net = Net(rng)
    net.uniform("conv.weight", (4, 3, 3, 3), 0.3)
    h = net.node("Conv", ["x", "conv.weight"], "conv_same", kernel_shape=[3, 3],
                 auto_pad="SAME_UPPER")
    h = net.node("MaxPool", [h], "pool_ceil", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    net.init("to_seq", np.array([4, 1, 16]), np.int64)
    h = net.node("Reshape", [h, "to_seq"], "reshape_seq")
    hidden = 5
    net.uniform("lstm.W", (1, 4 * hidden, 16), 0.2)
    net.uniform("lstm.R", (1, 4 * hidden, hidden), 0.2)
    net.nodes.append(helper.make_node("LSTM", [h, "lstm.W", "lstm.R"], ["lstm_y"], name="lstm_0",
                                      hidden_size=hidden))
    net.init("to_mat", np.array([4, hidden]), np.int64)
    h = net.node("Reshape", ["lstm_y", "to_mat"], "reshape_mat")
    net.uniform("proj", (hidden, 3), 0.3)
    net.nodes.append(helper.make_node("Einsum", [h, "proj"], ["y"], name="einsum_0",
                                      equation="ij,jk->ik"))
    inp = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])]
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])]
    return model_proto(net, inp, out, 13, "unsupported")


def make_old_opset(rng):
    net = Net(rng)
    net.uniform("fc.weight", (3, 4), 0.5)
    net.uniform("fc.bias", (3,), 0.5)
    net.nodes.append(helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"], name="fc",
                                      transB=1))
    inp = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
           helper.make_tensor_value_info("fc.weight", TensorProto.FLOAT, [3, 4]),
           helper.make_tensor_value_info("fc.bias", TensorProto.FLOAT, [3])]
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])]
    return model_proto(net, inp, out, 7, "old_opset")


# ---- files ------------------------------------------------------------------------------------

def save_model(path, model):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="directory for the .onnx and .safetensors files")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for name, make in (("mlp", make_mlp), ("lenet", make_lenet), ("resnet", make_resnet),
                       ("misc", make_misc), ("misc2", make_misc2)):
        model, x, t = make(rng)
        onnx.checker.check_model(model)
        save_model(os.path.join(args.out, name + ".onnx"), model)
        tol_public, tol_secret = t.tol()
        meta = {"tol_public": repr(tol_public), "tol_secret": repr(tol_secret), "model": name,
                "worst_public": repr(t.err[("worst", False)]),
                "worst_secret": repr(t.err[("worst", True)]),
                "rms_public": repr(t.err[("rms", False)]), "rms_secret": repr(t.err[("rms", True)])}
        save_file({"input": np.asarray(x, dtype=np.float64),
                   "output": np.asarray(t.v, dtype=np.float64)},
                  os.path.join(args.out, name + ".safetensors"), meta)
        print("%s: output %s (spread %.3g), tolerance public %.3g, secret %.3g "
              "(first-order bounds %.3g, %.3g; rms %.3g, %.3g)" %
              (name, list(t.v.shape), float(np.ptp(t.v)), tol_public, tol_secret,
               t.err[("worst", False)], t.err[("worst", True)], t.err[("rms", False)],
               t.err[("rms", True)]))
    unsupported = make_unsupported(rng)
    onnx.checker.check_model(unsupported)
    save_model(os.path.join(args.out, "unsupported.onnx"), unsupported)
    old = make_old_opset(rng)
    onnx.checker.check_model(old)
    save_model(os.path.join(args.out, "old_opset.onnx"), old)
    return 0


if __name__ == "__main__":
    sys.exit(main())
