"""dilnet on a CUDA GPU through PyTensor's JAX linker, against plain PyTorch (cuDNN), in one run.

What it measures (issue 7), all float32 on one device, every figure a median of timed calls
after warm-up (``jax.block_until_ready`` / ``torch.cuda.synchronize`` around each call):

1. A 3D context module (Yu & Koltun 2016): seven 3x3x3 convolutions with dilations
   1, 1, 2, 4, 8, 16, 1, each followed by a ReLU, then a 1x1x1 convolution; C channels
   throughout, biases, 'same' padding; x (N, C, S, S, S). Loss: mean squared error to a fixed
   random target. Training step: forward, backward, plain SGD update (lr 0.01).
   - PyTorch: ``F.conv3d`` + ``torch.optim.SGD``, cuDNN with its defaults (TF32 convolutions),
     ``cudnn.benchmark = True`` (XLA autotunes its convolutions too; ``--no-cudnn-benchmark``
     for PyTorch's default);
   - dilnet: the same network from ``dilnet.dilated_conv`` and PyTensor ops, compiled with
     ``pytensor.function(..., mode="JAX")``; parameters, input and target are shared variables
     whose values are device arrays (the SGD updates run in the same compiled function, which
     returns only the loss), checked with ``jax.transfer_guard("disallow")``. Timed once per
     weight-gradient strategy of ``dilnet.backends.jax_backend`` (the default, space_to_batch, first).
   Same initial values for both; agreement: forward output, loss, gradients, loss after a step.
2. The user's path: ``dilnet.model.Model(spec, device="cuda")`` (the same network from blocks,
   ending in a softmax; cross-entropy, SGD) against the same network in PyTorch, both taking
   the batch from host memory each step and returning the loss as a float: ``train_on_batch``
   and ``predict_on_batch`` times, agreement, whether the state stayed on the device, and
   ``predict_volume`` in tiles against PyTorch on the whole volume.
3. One dilated layer, x (N, C, S^3), W (C, C, 3, 3, 3), d = 1, 2, 4: the forward pass against
   Lasagne's 2016 "backward-wrt-weights trick" (the dilated forward computed as the weight
   gradient of a valid convolution strided by the dilation), through dilnet's own
   ``DilatedCorrGradWeights`` in JAX mode and through PyTorch (``torch.nn.grad.conv3d_weight``).

Run from the repository root (no install needed)::

    PYTHONPATH=. python bench/gpu.py --out gpu.json     # full size, < 4 minutes on an H100/H200
    .venv/bin/python bench/gpu.py --small                # tiny sizes on the CPU, seconds

A failing section prints its traceback and the others go on. ``--budget`` seconds (default 170)
bounds the optional extra strategies.
"""

import os

# before jax is imported: JAX must not grab 75% of the GPU, PyTorch shares it in this process
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import argparse
import json
import platform
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

# importable without an install: the repository root on the path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# PyTensor sums float32 with a float64 accumulator (the bias gradients here); with x64 off
# (floatX=float32 below) JAX says it computes them in float32 instead, as PyTorch does
warnings.filterwarnings(
    "ignore", message="Explicitly requested dtype float64 requested in astype is not available"
)

DILATIONS = (1, 1, 2, 4, 8, 16, 1)
TIMES = "\N{MULTIPLICATION SIGN}"  # as docs/benchmarks.md writes ratios
LR = 0.01
T0 = time.perf_counter()
RESULTS = {"errors": {}}
OUT_PATH = None


def log(msg=""):
    print(msg, flush=True)


def elapsed():
    return time.perf_counter() - T0


def save():
    if OUT_PATH:
        Path(OUT_PATH).write_text(json.dumps(RESULTS, indent=2, default=str))


def section(name):
    """Run a section; on error print the traceback, record it, and carry on."""

    def wrap(fn):
        def run(*args, **kwargs):
            log(f"\n## {name}  (t = {elapsed():.0f} s)")
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # one failing section must not hide the others
                traceback.print_exc()
                RESULTS["errors"][name] = f"{type(err).__name__}: {err}"
                return None
            finally:
                save()

        return run

    return wrap


def median_ms(call, sync, warmup=3, reps=20, max_s=4.0):
    """Median wall time in ms of ``call(); sync(result)``, after `warmup` untimed calls; fewer
    repeats (at least 5) when one call is slow, so that a slow path costs about `max_s`."""
    for _ in range(warmup):
        sync(call())
    times = []
    while len(times) < reps:
        t0 = time.perf_counter()
        sync(call())
        times.append(time.perf_counter() - t0)
        if len(times) >= 5 and sum(times) > max_s:
            break
    return 1e3 * statistics.median(times), len(times)


def rel_diff(a, b):
    """max |a - b| / max |b|, in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


# --------------------------------------------------------------------------------------------
# problem


def make_problem(cfg):
    """Initial parameters, input and target (numpy float32), identical for both frameworks."""
    rng = np.random.default_rng(2016)
    N, C, S = cfg["batch"], cfg["channels"], cfg["size"]
    kernels = [3] * len(DILATIONS) + [1]
    Ws = [
        (rng.standard_normal((C, C, k, k, k)) * np.sqrt(2.0 / (C * k**3))).astype(np.float32)
        for k in kernels
    ]
    bs = [(0.01 * rng.standard_normal(C)).astype(np.float32) for _ in kernels]
    x = rng.standard_normal((N, C, S, S, S), dtype=np.float32)
    target = rng.standard_normal((N, C, S, S, S), dtype=np.float32)
    return {"W": Ws, "b": bs, "x": x, "target": target, "dilations": (*DILATIONS, 1)}


# --------------------------------------------------------------------------------------------
# environment


@section("environment")
def environment(args):
    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "small": args.small,
        "XLA_PYTHON_CLIENT_PREALLOCATE": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
    }
    RESULTS["environment"] = env
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
        env["torch_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        env["torch_cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        env["torch_matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    except Exception as err:
        env["torch"] = f"unavailable: {err}"
    try:
        import jax

        env["jax"] = jax.__version__
        import jaxlib

        env["jaxlib"] = jaxlib.__version__
        dev = jax.devices()[0]
        env["jax_backend"] = jax.default_backend()
        env["jax_device"] = f"{dev.platform}: {getattr(dev, 'device_kind', dev)}"
        env["jax_default_matmul_precision"] = str(jax.config.jax_default_matmul_precision)
        conv_diff, dot_diff = _jax_precision_probe(jax)
        env["jax_default_vs_highest_rel_diff_conv"] = conv_diff
        env["jax_default_vs_highest_rel_diff_dot"] = dot_diff
    except Exception as err:
        env["jax"] = f"unavailable: {err}"
    try:
        import pytensor

        # float32 graphs: with floatX=float64 PyTensor turns on jax_enable_x64, and any stray
        # float64 constant would then run in float64 on the GPU
        pytensor.config.floatX = "float32"
        env["pytensor"] = pytensor.__version__
        import dilnet
        from dilnet.backends import jax_backend

        env["dilnet"] = dilnet.__version__
        env["dilnet_jax_precision"] = jax_backend.get_jax_precision()
        env["dilnet_jax_weight_grad_default"] = jax_backend.get_jax_weight_grad()
    except Exception as err:
        env["pytensor/dilnet"] = f"unavailable: {type(err).__name__}: {err}"
    for key, value in env.items():
        log(f"- {key}: {value}")
    jax_device = str(env.get("jax_device", "")).lower()
    if not any(k in jax_device for k in ("cuda", "gpu")) and env.get("torch_device") not in (
        None,
        "cpu",
    ):
        log("WARNING: PyTorch sees a GPU but JAX does not: dilnet's figures are CPU figures.")


def _jax_precision_probe(jax):
    """max rel diff between float32 results at JAX's default precision and at HIGHEST, for a
    convolution and a matrix product: about 1e-3 where the default is TF32 (NVIDIA GPUs),
    about 0 where it is float32 (CPUs)."""
    rng = np.random.default_rng(0)
    x = jax.device_put(rng.standard_normal((1, 32, 16, 16, 16), dtype=np.float32))
    W = jax.device_put(rng.standard_normal((32, 32, 3, 3, 3), dtype=np.float32))
    a = jax.device_put(rng.standard_normal((256, 4096), dtype=np.float32))

    def conv(precision):
        return np.asarray(
            jax.lax.conv_general_dilated(x, W, (1, 1, 1), "SAME", precision=precision)
        )

    def dot(precision):
        return np.asarray(jax.lax.dot_general(a, a, (((1,), (1,)), ((), ())), precision=precision))

    highest = jax.lax.Precision.HIGHEST
    return rel_diff(conv(None), conv(highest)), rel_diff(dot(None), dot(highest))


# --------------------------------------------------------------------------------------------
# PyTorch


def torch_setup():
    import torch

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = RESULTS["config"]["cudnn_benchmark"]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    return torch, dev, sync


def free_torch_cache():
    """Hand PyTorch's cached GPU memory back, for JAX (tensors of a finished section are freed)."""
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # torch missing or broken: its own section has said so
        pass


def torch_network(torch, dev, problem):
    """(weights, biases, forward) of the context module in PyTorch, from `problem`'s values."""
    F = torch.nn.functional
    Ws = [torch.tensor(w, device=dev, requires_grad=True) for w in problem["W"]]
    bs = [torch.tensor(b, device=dev, requires_grad=True) for b in problem["b"]]
    dils = problem["dilations"]

    def forward(h):
        for i, (W, b, d) in enumerate(zip(Ws, bs, dils, strict=True)):
            h = F.conv3d(h, W, b, padding=d * (W.shape[-1] // 2), dilation=d)
            if i < len(dils) - 1:
                h = F.relu(h)
        return h

    return Ws, bs, forward


@section("PyTorch context module")
def torch_context(problem, cfg):
    torch, dev, sync = torch_setup()
    F = torch.nn.functional
    Ws, bs, forward = torch_network(torch, dev, problem)
    x = torch.tensor(problem["x"], device=dev)
    target = torch.tensor(problem["target"], device=dev)
    opt = torch.optim.SGD([*Ws, *bs], lr=LR)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(forward(x), target)
        loss.backward()
        opt.step()
        return loss

    def fwd():
        with torch.no_grad():
            return forward(x)

    def loss_only():
        with torch.no_grad():
            return F.mse_loss(forward(x), target)

    def wait(_):
        sync()

    out = {}
    y0 = fwd().cpu().numpy()
    loss0 = float(loss_only())
    step()
    grads = [p.grad.detach().cpu().numpy() for p in [*Ws, *bs]]
    loss1 = float(loss_only())
    out["forward_ms"], out["forward_n"] = median_ms(fwd, wait, reps=cfg["reps"])
    out["step_ms"], out["step_n"] = median_ms(step, wait, reps=cfg["reps"])
    out["loss0"], out["loss1"] = loss0, loss1
    log(f"forward {out['forward_ms']:.2f} ms, training step {out['step_ms']:.2f} ms")
    log(f"loss {loss0:.6f} -> {loss1:.6f} after one SGD step")
    RESULTS["torch_context"] = out
    return {"y0": y0, "grads": grads, "loss0": loss0, "loss1": loss1}


# --------------------------------------------------------------------------------------------
# dilnet (PyTensor, JAX linker)


def to_device(shared, value):
    """Put a device array in a shared variable's storage. ``set_value`` would filter it back to a
    numpy array (TensorType.filter), so every call would copy it to the device again."""
    import jax

    shared.container.storage[0] = jax.device_put(value)


class DilnetContext:
    """The context module as a PyTensor graph over shared variables."""

    def __init__(self, problem):
        import pytensor
        import pytensor.tensor as pt

        from dilnet import dilated_conv

        self.pytensor = pytensor
        self.problem = problem

        def sh(value, name):  # static shapes: no broadcasting checks left for JAX to drop
            return pytensor.shared(value, name=name, shape=value.shape)

        self.x = sh(problem["x"], name="x")
        self.target = sh(problem["target"], name="target")
        self.Ws = [sh(w, name=f"W{i}") for i, w in enumerate(problem["W"])]
        self.bs = [sh(b, name=f"b{i}") for i, b in enumerate(problem["b"])]
        dils = problem["dilations"]
        h = self.x
        for i, (W, b, d) in enumerate(zip(self.Ws, self.bs, dils, strict=True)):
            h = dilated_conv(h, W, dilation=d, pad="same") + b.dimshuffle("x", 0, "x", "x", "x")
            if i < len(dils) - 1:
                h = pt.maximum(h, np.float32(0))
        self.y = h
        # float32 accumulation, as PyTorch's mse_loss (PyTensor's default for float32 sums is
        # a float64 accumulator, which JAX without x64 truncates with a warning)
        self.loss = pt.mean((h - self.target) ** 2, acc_dtype="float32")
        self.params = [*self.Ws, *self.bs]
        self.grads = pytensor.grad(self.loss, self.params)
        lr = np.float32(LR)
        self.updates = [(p, p - lr * g) for p, g in zip(self.params, self.grads, strict=True)]
        dtypes = {v.dtype for v in [self.y, self.loss, *self.grads]}
        assert dtypes == {"float32"}, f"graph is not float32 throughout: {dtypes}"

    def reset(self):
        """Initial values, as device arrays."""
        to_device(self.x, self.problem["x"])
        to_device(self.target, self.problem["target"])
        for p, v in zip(self.params, [*self.problem["W"], *self.problem["b"]], strict=True):
            to_device(p, v)

    def compile(self, outputs, updates=None):
        t0 = time.perf_counter()
        f = self.pytensor.function([], outputs, updates=updates, mode="JAX")
        return f, time.perf_counter() - t0

    def device_state(self):
        return [p.container.storage[0] for p in self.params]


def jax_sync(result):
    import jax

    jax.block_until_ready(result)


@section("dilnet context module: forward")
def dilnet_forward(net, ref, cfg):
    net.reset()
    fwd, t_compile = net.compile(net.y)
    loss_fn, _ = net.compile(net.loss)
    t0 = time.perf_counter()
    y0 = np.asarray(fwd())
    first = time.perf_counter() - t0
    out = {"compile_s": t_compile, "first_call_s": first}
    out["forward_ms"], out["forward_n"] = median_ms(fwd, jax_sync, reps=cfg["reps"])
    if ref is not None:
        out["forward_rel_diff_vs_torch"] = rel_diff(y0, ref["y0"])
    log(
        f"forward {out['forward_ms']:.2f} ms (compile {t_compile:.1f} s, first call {first:.1f} s)"
        + (
            f"; output vs PyTorch: max rel diff {out['forward_rel_diff_vs_torch']:.1e}"
            if ref is not None
            else ""
        )
    )
    RESULTS["dilnet_forward"] = out
    return loss_fn


def dilnet_step(net, loss_fn, ref, cfg, strategy):
    import jax

    from dilnet.backends import jax_backend

    jax_backend.set_jax_weight_grad(strategy)
    try:
        net.reset()
        check, _ = net.compile([net.loss, *net.grads])
        train, t_compile = net.compile(net.loss, updates=net.updates)
    finally:
        jax_backend.set_jax_weight_grad(
            RESULTS.get("environment", {}).get("dilnet_jax_weight_grad_default", "space_to_batch")
        )
    loss0, *grads = check()
    t0 = time.perf_counter()
    jax_sync(train())
    first = time.perf_counter() - t0
    loss1 = float(loss_fn())
    out = {"compile_s": t_compile, "first_call_s": first, "loss0": float(loss0), "loss1": loss1}
    try:
        with jax.transfer_guard("disallow"):
            jax_sync(train())
        out["device_resident"] = True
    except Exception as err:  # a host<->device copy inside the step
        out["device_resident"] = f"no: {str(err)[:200]}"
    out["step_ms"], out["step_n"] = median_ms(
        train, lambda r: jax_sync((r, net.device_state())), reps=cfg["reps"]
    )
    if ref is not None:
        out["loss0_rel_diff_vs_torch"] = rel_diff(loss0, ref["loss0"])
        out["loss1_rel_diff_vs_torch"] = rel_diff(loss1, ref["loss1"])
        out["grad_rel_diff_vs_torch"] = max(
            rel_diff(g, r) for g, r in zip(grads, ref["grads"], strict=True)
        )
    log(
        f"[{strategy}] training step {out['step_ms']:.2f} ms (compile {t_compile:.1f} s, first "
        f"call {first:.1f} s); device-resident: {out['device_resident']}"
    )
    if ref is not None:
        log(
            f"[{strategy}] vs PyTorch: loss {out['loss0_rel_diff_vs_torch']:.1e}, gradients "
            f"{out['grad_rel_diff_vs_torch']:.1e}, loss after one step "
            f"{out['loss1_rel_diff_vs_torch']:.1e} (max rel diff)"
        )
    RESULTS.setdefault("dilnet_step", {})[strategy] = out


# --------------------------------------------------------------------------------------------
# the user's path: dilnet.model.Model(device="cuda") against the same network in PyTorch


def model_spec(C):
    """The context module as blocks: the same layers as `make_problem`'s, softmax over C
    classes at the end."""
    from dilnet import Sequential
    from dilnet import blocks as B

    return Sequential([
        B.Input(channels=C),
        B.DilatedStack(filters=C, dilations=DILATIONS, activation="relu"),
        B.Classifier(num_classes=C),
    ])  # fmt: skip


@section("Model(device='cuda') vs PyTorch: a batch from host memory per step")
def model_context(problem, cfg):
    """Both sides take the batch from numpy each step and return the loss as a Python float:
    ``Model.train_on_batch`` (SGD, cross-entropy) against PyTorch's conv3d stack with
    ``F.cross_entropy`` and ``torch.optim.SGD``; ``predict_on_batch`` against softmax + ``.cpu()``;
    then ``predict_volume`` on a volume twice the batch's size per axis, in tiles."""
    import jax

    from dilnet.inference import predict_volume
    from dilnet.model import Model

    torch, dev, _ = torch_setup()
    F = torch.nn.functional
    C = cfg["channels"]
    x = problem["x"]
    labels = np.argmax(problem["target"], axis=1)  # C classes per voxel
    gpu = any(d.platform == "gpu" for d in jax.devices())
    model = Model(model_spec(C), **({"device": "cuda"} if gpu else {"mode": "JAX"}))
    names = [p.name for p in model.params]
    values = [v for pair in zip(problem["W"], problem["b"], strict=True) for v in pair]
    assert len(values) == len(names), names
    model.set_weights(values)
    model.compile("sgd", "crossentropy", learning_rate=LR)

    Ws, bs, logits = torch_network(torch, dev, problem)
    opt = torch.optim.SGD([*Ws, *bs], lr=LR)

    def torch_step():
        opt.zero_grad(set_to_none=True)
        xb = torch.from_numpy(x).to(dev)
        yb = torch.from_numpy(labels).to(dev)
        loss = F.cross_entropy(logits(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()

    def torch_predict():
        with torch.no_grad():
            return logits(torch.from_numpy(x).to(dev)).softmax(dim=1).cpu().numpy()

    out = {"device": str(model.device)}
    p_torch = torch_predict()
    p_dilnet = model.predict_on_batch(x)
    out["predict_rel_diff_vs_torch"] = rel_diff(p_dilnet, p_torch)
    loss_torch = torch_step()
    loss_dilnet = model.train_on_batch(x, labels)["loss"]
    out["loss_rel_diff_vs_torch"] = rel_diff(loss_dilnet, loss_torch)
    out["after_step_rel_diff_vs_torch"] = rel_diff(model.predict_on_batch(x), torch_predict())
    state = [v.get_value(borrow=True) for v in [*model.params, *model._optimizer_state]]
    out["state_on_device"] = all(isinstance(v, jax.Array) for v in state)
    nothing = lambda _: None  # noqa: E731  (both return host values: already synchronised)
    out["torch_step_ms"], _ = median_ms(torch_step, nothing, reps=cfg["reps"])
    out["model_step_ms"], _ = median_ms(
        lambda: model.train_on_batch(x, labels), nothing, reps=cfg["reps"]
    )
    out["torch_predict_ms"], _ = median_ms(torch_predict, nothing, reps=cfg["reps"])
    out["model_predict_ms"], _ = median_ms(
        lambda: model.predict_on_batch(x), nothing, reps=cfg["reps"]
    )
    S = cfg["size"]
    volume = np.random.default_rng(7).standard_normal((C, 2 * S, 2 * S, 2 * S), dtype=np.float32)
    t0 = time.perf_counter()
    tiled = predict_volume(model, volume, tile=(S, S, S), progress=False)
    out["predict_volume_s"] = time.perf_counter() - t0
    with torch.no_grad():
        whole = logits(torch.from_numpy(volume[None]).to(dev)).softmax(dim=1)[0].cpu().numpy()
    out["predict_volume_rel_diff_vs_torch_whole"] = rel_diff(tiled, whole)
    log(
        f"[{out['device']}] training step {out['model_step_ms']:.2f} ms vs PyTorch "
        f"{out['torch_step_ms']:.2f} ms ({out['model_step_ms'] / out['torch_step_ms']:.2f}x); "
        f"predict {out['model_predict_ms']:.2f} ms vs {out['torch_predict_ms']:.2f} ms; state on "
        f"device: {out['state_on_device']}"
    )
    log(
        f"agreement (max rel diff): predict {out['predict_rel_diff_vs_torch']:.1e}, loss "
        f"{out['loss_rel_diff_vs_torch']:.1e}, after one step "
        f"{out['after_step_rel_diff_vs_torch']:.1e}; predict_volume ({2 * S}³ in {S}³ tiles, "
        f"{out['predict_volume_s']:.1f} s) vs PyTorch whole {out['predict_volume_rel_diff_vs_torch_whole']:.1e}"
    )
    RESULTS["model_context"] = out


# --------------------------------------------------------------------------------------------
# one layer: forward vs the backward-wrt-weights trick


@section("one layer: forward vs the backward-wrt-weights trick")
def single_layer(cfg):
    rng = np.random.default_rng(7)
    N, C, S = cfg["batch"], cfg["channels"], cfg["size"]
    x_np = rng.standard_normal((N, C, S, S, S), dtype=np.float32)
    W_np = (rng.standard_normal((C, C, 3, 3, 3)) * 0.05).astype(np.float32)
    rows = RESULTS.setdefault("single_layer", {})
    for d in (1, 2, 4):
        row = rows.setdefault(f"d={d}", {})
        xpad_np = np.pad(x_np, ((0, 0), (0, 0), *((d, d),) * 3))
        for name, fn in (("torch", _layer_torch), ("dilnet", _layer_dilnet)):
            try:
                row.update(fn(x_np, W_np, xpad_np, d, cfg))
            except Exception as err:
                traceback.print_exc()
                RESULTS["errors"][f"single_layer d={d} {name}"] = f"{type(err).__name__}: {err}"
        if "dilnet_forward_ms" in row and "torch_forward_ms" in row:
            row["dilnet_over_torch_forward"] = row["dilnet_forward_ms"] / row["torch_forward_ms"]
        log(f"d={d}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in row.items()))
        save()


def _fmt(v):
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _layer_torch(x_np, W_np, xpad_np, d, cfg):
    torch, dev, sync = torch_setup()
    x, W = torch.tensor(x_np, device=dev), torch.tensor(W_np, device=dev)
    xpad = torch.tensor(xpad_np, device=dev)
    N, S = x_np.shape[0], x_np.shape[2]

    def fwd():
        with torch.no_grad():
            return torch.nn.functional.conv3d(x, W, padding=d, dilation=d)

    def trick():
        # Lasagne's DilatedConv2DLayer: the weight gradient of a valid conv strided by d, with
        # the batch and channel axes of the input and of W swapped
        with torch.no_grad():
            g = torch.nn.grad.conv3d_weight(
                xpad.transpose(0, 1), (W.shape[0], N, S, S, S), W.transpose(0, 1), stride=d
            )
            return g.transpose(0, 1)

    def wait(_):
        sync()

    diff = rel_diff(trick().cpu().numpy(), fwd().cpu().numpy())
    f_ms, _ = median_ms(fwd, wait, reps=cfg["reps"])
    t_ms, _ = median_ms(trick, wait, reps=cfg["reps"])
    return {
        "torch_forward_ms": f_ms,
        "torch_trick_ms": t_ms,
        "torch_trick_over_forward": t_ms / f_ms,
        "torch_trick_rel_diff": diff,
    }


def _layer_dilnet(x_np, W_np, xpad_np, d, cfg):
    import pytensor

    from dilnet import dilated_conv
    from dilnet.backends import jax_backend
    from dilnet.ops import DilatedCorrGradWeights

    C, S = x_np.shape[1:3]
    x = pytensor.shared(x_np, name="x", shape=x_np.shape)
    W = pytensor.shared(W_np, name="W", shape=W_np.shape)
    xpad = pytensor.shared(xpad_np, name="xpad", shape=xpad_np.shape)
    for v, val in ((x, x_np), (W, W_np), (xpad, xpad_np)):
        to_device(v, val)
    y = dilated_conv(x, W, dilation=d, pad="same")
    # the trick through dilnet's own Op. W_ref only gives the result's shape (O, N, S, S, S);
    # with O == C, x with batch and channels swapped has it (and allocates nothing)
    assert W_np.shape[0] == C
    op = DilatedCorrGradWeights(stride=(d,) * 3, dilation=(1,) * 3, pad=((0, 0),) * 3)
    shuffle = (1, 0, 2, 3, 4)
    y_trick = op(xpad.dimshuffle(shuffle), W.dimshuffle(shuffle), x.dimshuffle(shuffle)).dimshuffle(
        shuffle
    )
    fwd = pytensor.function([], y, mode="JAX")
    trick = pytensor.function([], y_trick, mode="JAX")
    diff = rel_diff(np.asarray(trick()), np.asarray(fwd()))
    f_ms, _ = median_ms(fwd, jax_sync, reps=cfg["reps"])
    t_ms, _ = median_ms(trick, jax_sync, reps=cfg["reps"])
    strategy = jax_backend.weight_grad_strategy_for(
        op, (S, S, S), jax_backend.get_jax_weight_grad()
    )
    return {
        "dilnet_forward_ms": f_ms,
        "dilnet_trick_ms": t_ms,
        "dilnet_trick_over_forward": t_ms / f_ms,
        "dilnet_trick_rel_diff": diff,
        "dilnet_trick_weight_grad_strategy": strategy,
    }


# --------------------------------------------------------------------------------------------
# report


def markdown():
    env = RESULTS.get("environment", {})
    lines = [
        f"Device: {env.get('torch_device')} / JAX {env.get('jax_device')}; torch "
        f"{env.get('torch')} (CUDA {env.get('torch_cuda')}, cuDNN {env.get('cudnn')}), jax "
        f"{env.get('jax')}, jaxlib {env.get('jaxlib')}, pytensor {env.get('pytensor')}, dilnet "
        f"{env.get('dilnet')} (JAX precision '{env.get('dilnet_jax_precision')}'), python "
        f"{env.get('python')}. float32; TF32 as each framework's default.",
        "",
    ]
    t = RESULTS.get("torch_context", {})
    f = RESULTS.get("dilnet_forward", {})
    cfg = RESULTS.get("config", {})
    shape = f"x ({cfg.get('batch')}, {cfg.get('channels')}, {cfg.get('size')}³)"
    lines += [
        f"Context module (C={cfg.get('channels')}, {shape}, dilations 1,1,2,4,8,16,1 + 1³; "
        "loss = mean squared error to a fixed target; plain SGD):",
        "",
        "| pass | PyTorch ms | dilnet ms | dilnet / PyTorch | target | agreement (max rel diff) |",
        "|---|---|---|---|---|---|",
    ]

    def ratio(a, b):
        return f"{a / b:.2f}{TIMES}" if a and b else "—"

    def ms(v):
        return f"{v:.2f}" if isinstance(v, float) else "—"

    if f or t:
        agree = f.get("forward_rel_diff_vs_torch")
        lines.append(
            f"| forward | {ms(t.get('forward_ms'))} | {ms(f.get('forward_ms'))} | "
            f"{ratio(f.get('forward_ms'), t.get('forward_ms'))} | ≤ 1.10{TIMES} | "
            f"{f'output {agree:.1e}' if agree is not None else '—'} |"
        )
    for strategy, s in RESULTS.get("dilnet_step", {}).items():
        agree = (
            f"loss {s['loss0_rel_diff_vs_torch']:.1e}, grads {s['grad_rel_diff_vs_torch']:.1e}, "
            f"loss after 1 step {s['loss1_rel_diff_vs_torch']:.1e}"
            if "grad_rel_diff_vs_torch" in s
            else "—"
        )
        lines.append(
            f"| training step (weight grad '{strategy}') | {ms(t.get('step_ms'))} | "
            f"{ms(s.get('step_ms'))} | {ratio(s.get('step_ms'), t.get('step_ms'))} | ≤ 1.25{TIMES} | "
            f"{agree} |"
        )
    m = RESULTS.get("model_context")
    if m:
        lines += [
            "",
            f"`Model(device=...)` on {m['device']}, the same network ending in a softmax, "
            "cross-entropy, SGD; a batch from host memory per step, the loss back as a float:",
            "",
            "| call | PyTorch ms | dilnet ms | dilnet / PyTorch | agreement (max rel diff) |",
            "|---|---|---|---|---|",
            f"| `train_on_batch` | {ms(m['torch_step_ms'])} | {ms(m['model_step_ms'])} | "
            f"{ratio(m['model_step_ms'], m['torch_step_ms'])} | loss "
            f"{m['loss_rel_diff_vs_torch']:.1e}, after one step "
            f"{m['after_step_rel_diff_vs_torch']:.1e} |",
            f"| `predict_on_batch` | {ms(m['torch_predict_ms'])} | {ms(m['model_predict_ms'])} | "
            f"{ratio(m['model_predict_ms'], m['torch_predict_ms'])} | "
            f"{m['predict_rel_diff_vs_torch']:.1e} |",
            "",
            f"Parameters and optimizer state on the device between steps: "
            f"{m['state_on_device']}; `predict_volume` in tiles vs PyTorch on the whole volume: "
            f"{m['predict_volume_rel_diff_vs_torch_whole']:.1e}.",
        ]
    layer = RESULTS.get("single_layer", {})
    if layer:
        lines += [
            "",
            f"One dilated layer, x ({cfg.get('batch')}, {cfg.get('channels')}, {cfg.get('size')}³), "
            f"W ({cfg.get('channels')}, {cfg.get('channels')}, 3³), 'same': forward vs Lasagne's "
            "backward-wrt-weights trick (same result as the weight gradient of a valid conv "
            "strided by d):",
            "",
            "| d | PyTorch fwd ms | PyTorch trick ms | trick / fwd | dilnet fwd ms | "
            "dilnet trick ms | trick / fwd | dilnet / PyTorch fwd |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for d, r in layer.items():
            lines.append(
                f"| {d[2:]} | {ms(r.get('torch_forward_ms'))} | {ms(r.get('torch_trick_ms'))} | "
                f"{ratio(r.get('torch_trick_ms'), r.get('torch_forward_ms'))} | "
                f"{ms(r.get('dilnet_forward_ms'))} | {ms(r.get('dilnet_trick_ms'))} | "
                f"{ratio(r.get('dilnet_trick_ms'), r.get('dilnet_forward_ms'))} | "
                f"{ratio(r.get('dilnet_forward_ms'), r.get('torch_forward_ms'))} |"
            )
    if RESULTS["errors"]:
        lines += ["", "Errors: " + "; ".join(f"{k}: {v}" for k, v in RESULTS["errors"].items())]
    return "\n".join(lines)


def main():
    global OUT_PATH
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (CPU, seconds)")
    parser.add_argument("--out", help="also write the results as JSON to this path")
    parser.add_argument("--reps", type=int, default=None, help="timed calls per figure")
    parser.add_argument(
        "--budget", type=float, default=170.0, help="seconds after which optional parts are skipped"
    )
    parser.add_argument(
        "--no-cudnn-benchmark",
        dest="cudnn_benchmark",
        action="store_false",
        help="leave torch.backends.cudnn.benchmark at PyTorch's default (False)",
    )
    parser.add_argument(
        "--strategies",
        default="space_to_batch,taps,vjp",
        help="dilnet weight-gradient strategies to time, in order (the first is always run)",
    )
    args = parser.parse_args()
    OUT_PATH = args.out
    cfg = (
        {"batch": 1, "channels": 4, "size": 12, "reps": 5}
        if args.small
        else {"batch": 2, "channels": 32, "size": 96, "reps": 20}
    )
    if args.reps:
        cfg["reps"] = args.reps
    RESULTS["config"] = {
        **cfg,
        "lr": LR,
        "dilations": DILATIONS,
        "budget_s": args.budget,
        "cudnn_benchmark": args.cudnn_benchmark,
    }
    environment(args)
    problem = make_problem(cfg)
    ref = torch_context(problem, cfg)
    free_torch_cache()

    net = section("dilnet context module: build graph")(DilnetContext)(problem)
    strategies = [s for s in args.strategies.split(",") if s]
    if net is not None:
        loss_fn = dilnet_forward(net, ref, cfg)
        if loss_fn is not None and strategies:
            section(f"dilnet context module: training step, '{strategies[0]}'")(dilnet_step)(
                net, loss_fn, ref, cfg, strategies[0]
            )
    free_torch_cache()
    model_context(problem, cfg)
    single_layer(cfg)
    free_torch_cache()
    if net is not None and loss_fn is not None:
        for strategy in strategies[1:]:
            if elapsed() > args.budget:
                log(f"\nskipped '{strategy}': over the {args.budget:.0f} s budget")
                RESULTS["errors"][f"step '{strategy}'"] = "skipped: over budget"
                continue
            section(f"dilnet context module: training step, '{strategy}'")(dilnet_step)(
                net, loss_fn, ref, cfg, strategy
            )
    RESULTS["total_s"] = elapsed()
    save()
    log("\n## Markdown (docs/benchmarks.md)\n")
    log(markdown())
    log(f"\ntotal {elapsed():.0f} s")


if __name__ == "__main__":
    main()
