"""Device placement without a GPU (issue 23): training (D step, lazy R1, G step, EMA, samples,
validation, checkpoints), an edit and a SynthFaces benchmark pass run with every network and every
tensor they compute on a non-CPU device, give a CPU run's numbers, and an op that mixes that
device with a CPU tensor fails, as on CUDA; then the choices that follow the device (bf16
autocast, pinned batches, DDP's arguments, the collective backend).

How: a *virtual device*. :class:`OnDevice` is a tensor that reports the device ``VIRTUAL``
(PyTorch's ``lazy`` device type, used here only as a name) and keeps its values in a CPU tensor
inside; :class:`VirtualDevice` (a ``TorchDispatchMode``) sees every ATen op, runs it on those CPU
values and refuses, with CUDA's message, one whose tensors sit on two devices. CUDA's exceptions
are kept: a 0-dim CPU tensor is a scalar, ``copy_`` and ``_to_copy`` cross devices, index tensors
may be on the CPU; a CPU ``torch.Generator`` cannot drive a device op. The values are real, so the
code runs unchanged: host reads (``.item()``, ``bool(t)``, ``.tolist()``, ``.cpu()``) work,
``.numpy()`` of a device tensor fails as on CUDA, and ``torch.save`` writes a device tensor's
values. Nothing in the project is patched but the device choice of the editing and benchmark
commands (``resolve_device`` refuses an unknown device); the tests only share one LPIPS network
between trainers (a random VGG16 takes seconds to build), which each trainer moves itself.

Why not ``FakeTensorMode`` with fake ``cuda`` tensors: on a machine without a GPU autograd's
engine asks the CUDA driver about the device ("hasPrimaryContext expects a valid device index"),
so no backward pass (no training step) can run; and fake tensors hold no values, so every host
read would need a patch and the benchmark, which scores images with NumPy, could not run at all.
A wrapper that reports ``cuda`` fails in the engine the same way; autograd runs ``lazy`` tensors'
backward on its CPU queue, hence that device type.

Not covered: what only a GPU runs (CUDA kernels and their numerics, bf16 autocast on CUDA, pinned
memory, NCCL); the choices are tested below, and ``python -m evaluation.speed --device cuda --all``
runs the GPU path on a lent GPU.
"""
from __future__ import annotations

import collections
import copy

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tests.helpers import SIZE, save_tiny_checkpoint, tiny_config, write_config

#: The virtual device: a trainer gets ``lazy:0`` (as train.py gives ``cuda:<rank>``), the editing
#: commands ``lazy`` (as ``resolve_device('cuda')`` gives ``cuda``).
VIRTUAL = torch.device("lazy", 0)
aten = torch.ops.aten
#: Ops that take their input from one device and give their output on another.
CROSS_DEVICE = {aten.copy_.default, aten._to_copy.default}
#: Ops whose index tensors (argument 1) may be on the CPU whatever the device of the others.
INDEXING = {aten.index.Tensor, aten.index_put_.default, aten.index_put.default, aten._index_put_impl_.default}
#: The compute-heavy ops: during a training step or an edit none of them may run on the CPU.
HEAVY = {"convolution", "convolution_backward", "mm", "addmm", "bmm", "baddbmm"}


class OnDevice(torch.Tensor):
    """A tensor on ``VIRTUAL`` whose values are the CPU tensor ``elem`` (same shape and strides)."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        t = torch.Tensor._make_wrapper_subclass(cls, elem.shape, strides=elem.stride(),
                                                storage_offset=elem.storage_offset(), dtype=elem.dtype,
                                                layout=elem.layout, device=VIRTUAL, requires_grad=False)
        t.elem = elem
        return t

    def tolist(self):  # a device tensor's values come back to the host, as from CUDA
        return self.elem.tolist()

    def numpy(self, *, force: bool = False):  # ... but NumPy takes CPU tensors only, as from CUDA
        raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to copy the "
                        "tensor to host memory first.")

    def __repr__(self) -> str:
        return f"OnDevice({self.elem!r})"

    def __reduce_ex__(self, protocol):  # torch.save writes its values (read back with map_location="cpu")
        return self.elem.__reduce_ex__(protocol)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return run_op(func, args, kwargs or {}, None)


def _device_of(t: torch.Tensor) -> str:
    return VIRTUAL.type if isinstance(t, OnDevice) else t.device.type


def _tensors(values) -> list:
    """The tensors among an op's arguments (ATen nests them one list deep at most)."""
    out = []
    for v in values:
        if isinstance(v, torch.Tensor):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out.extend(t for t in v if isinstance(t, torch.Tensor))
    return out


def _unwrap(v):
    if isinstance(v, OnDevice):
        return v.elem
    if isinstance(v, (list, tuple)):
        return type(v)(_unwrap(t) for t in v)
    return v


def _check_devices(func, args, kwargs) -> set:
    """The devices of the op's tensors (CPU scalars aside); RuntimeError when they are two."""
    own = list(args[:1]) + list(args[2:]) if func in INDEXING else list(args)
    found = {_device_of(t) for t in _tensors(own + list(kwargs.values()))
             if not (t.dim() == 0 and not isinstance(t, OnDevice) and t.device.type == "cpu")}
    if func in INDEXING and len(args) > 1:
        found |= {_device_of(t) for t in _tensors(args[1])} - {"cpu"}
    if len(found) > 1 and func not in CROSS_DEVICE:
        a, b = sorted(found)
        raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, {a} and "
                           f"{b}! (virtual-device check of {func})")
    return found


def run_op(func, args, kwargs, seen):
    """Run ``func`` on the CPU values of its arguments; outputs on ``VIRTUAL`` when the op's device
    (its ``device`` argument, else its tensors') is that device. ``seen`` counts (device, op)."""
    found = _check_devices(func, args, kwargs)
    target = kwargs.get("device")
    if target is not None:
        on_device = torch.device(target).type == VIRTUAL.type
        if on_device:
            kwargs = {**kwargs, "device": torch.device("cpu")}
    elif func in CROSS_DEVICE:
        on_device = isinstance(args[0], OnDevice)  # copy_ writes into its first argument
    else:
        on_device = VIRTUAL.type in found
    if on_device and kwargs.get("generator") is not None:
        raise RuntimeError(f"Expected a '{VIRTUAL.type}' device type for generator but found 'cpu' ({func})")
    if seen is not None:
        seen[(VIRTUAL.type if on_device else "cpu", func.overloadpacket.__name__)] += 1
    given = {id(_unwrap(t)): t for t in _tensors(list(args) + list(kwargs.values()))}
    with torch.no_grad():  # autograd records on the OnDevice tensors, above this level
        out = func(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})

    def wrap(o):  # an in-place op returns its argument itself
        if isinstance(o, (list, tuple)):
            return type(o)(wrap(t) for t in o)
        if not isinstance(o, torch.Tensor):
            return o
        return given[id(o)] if id(o) in given else OnDevice(o) if on_device else o

    return wrap(out)


def _backend_empty(size, *, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    return OnDevice(torch.empty(size, dtype=dtype, memory_format=memory_format))


def _backend_copy_(self, src, non_blocking=False):
    self.elem.copy_(src.elem if isinstance(src, OnDevice) else src)
    return self


class VirtualDevice(TorchDispatchMode):
    """While active, tensors created with ``device=VIRTUAL`` (or moved there) are :class:`OnDevice`
    and every op is checked as above; ``seen`` counts the ops run per (device, op name).

    Tensors made from Python data (``torch.tensor(data, device=...)``, a list index of a device
    tensor) are allocated and filled by C++ below the dispatch mode: for them the ``lazy`` backend
    gets the two kernels they need while the mode is active."""

    def __init__(self):
        super().__init__()
        self.seen: collections.Counter = collections.Counter()
        self._backend = None

    def __enter__(self):
        self._backend = torch.library.Library("aten", "IMPL")
        self._backend.impl("empty.memory_format", _backend_empty, "Lazy")
        self._backend.impl("copy_", _backend_copy_, "Lazy")
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._backend._destroy()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return run_op(func, args, kwargs or {}, self.seen)

    def heavy_on_cpu(self) -> set:
        return {name for (dev, name) in self.seen if dev == "cpu" and name in HEAVY}

    def ran_on_device(self, name: str) -> int:
        return self.seen[(VIRTUAL.type, name)]


# ----------------------------------------------------------------------------------------- the mechanism
def test_the_virtual_device_behaves_as_a_device():
    """Real values on a reported non-CPU device; mixing it with CPU tensors fails as on CUDA, with
    CUDA's exceptions (CPU scalars, cross-device copies, CPU indices)."""
    with VirtualDevice() as mode:
        x = torch.arange(6.0).reshape(2, 3).to(VIRTUAL)
        assert isinstance(x, OnDevice) and x.device == VIRTUAL and (x * 2).device == VIRTUAL
        assert torch.zeros(2, device=VIRTUAL).device == VIRTUAL and torch.zeros(2).device.type == "cpu"
        assert (x + torch.tensor(1.0)).sum().item() == 21.0  # a CPU scalar mixes in
        assert x[torch.tensor([1])].tolist() == [[3.0, 4.0, 5.0]]  # CPU indices are allowed
        z = x.clone()
        z[[0]] = torch.tensor([9.0, 9.0, 9.0], device=VIRTUAL)  # tensors from Python data
        assert z.sum().item() == 39.0
        assert x.cpu().numpy().sum() == 15.0
        with pytest.raises(RuntimeError, match="found at least two devices, cpu and lazy"):
            x + torch.ones(2, 3)
        with pytest.raises(RuntimeError, match="found at least two devices"):
            torch.cat([x, torch.ones(1, 3)])
        with pytest.raises(TypeError, match="numpy"):
            x.numpy()
        with pytest.raises(RuntimeError, match="device type for generator"):
            torch.randn(2, device=VIRTUAL, generator=torch.Generator().manual_seed(0))
        w = torch.ones(3, device=VIRTUAL, requires_grad=True)
        (g,) = torch.autograd.grad((x * w).square().sum(), w, create_graph=True)
        g.sum().backward()
        assert w.grad.device == VIRTUAL and w.grad.tolist() == [2 * (0 + 9), 2 * (1 + 16), 2 * (4 + 25)]
    assert mode.ran_on_device("mul") > 0


# ------------------------------------------------------------------------------------------ training
def default_like_config() -> dict:
    """configs/synthfaces.json's networks and loss at the tiny size, with the discriminator, lazy R1
    (every 2nd step), LPIPS (random VGG) and channels-last switched on, bf16 asked for as there."""
    from tests.helpers import TINY_DISCRIMINATOR, TINY_ENCODER, TINY_GENERATOR

    return tiny_config(
        encoder={"type": "BoxEncoder", "args": {**TINY_ENCODER, "content_input": "fill_components",
                                                "component_input": "crops", "crop_size": 8, "crop_channels": 8,
                                                "ring_fit": "plane", "crop_exclusive": True, "ring_exclusive": True}},
        generator={"type": "PaintingGenerator", "args": {**TINY_GENERATOR, "cam": True, "cam_placement": "aligned",
                                                         "cam_modulated": False, "component_paint": 16}},
        discriminator={"type": "Discriminator", "args": dict(TINY_DISCRIMINATOR)},
        data_set={"type": "SynthFaces", "args": {"size": SIZE, "seed": 1, "num_train": 4, "num_val": 3, "num_test": 2}},
        data_loader={"batch_size": 2, "num_val_samples": 3, "mask_p": 0.5},
        loss={"type": "CounterfactualLoss", "args": {
            "g_loss_weight": 0.1, "p_loss_weight": 1, "lpips_backbone": "random", "l1_loss_weight": 1,
            "box_l1_weight": 2, "swap_weight": 1, "swap_pairs": 2, "swap_box_weight": 1, "d_reg_every": 2, "r1": 1,
            "swap_components": ["l_eye", "r_eye", "nose", "mouth", "eyes"]}},
        trainer={"amp": "bf16", "channels_last": True, "val_noise": "random", "epochs": 1, "save_period": 1,
                 "update_ckpt": 1, "vis_period": 1, "monitor": "min avg_mse"})


@pytest.fixture(scope="module")
def random_lpips():
    from model.lpips import build_lpips

    return build_lpips("random")


@pytest.fixture
def lpips_built_once(monkeypatch, random_lpips):
    """Each trainer's LPIPS is a copy of one built for the module (a random VGG16 takes seconds)."""
    import trainer.losses as losses

    monkeypatch.setattr(losses, "build_lpips", lambda *args, **kwargs: copy.deepcopy(random_lpips))


class SmoothAdam(torch.optim.Adam):
    """Adam with eps 1e-3. With the default 1e-8 the first updates are about ``lr * sign(grad)``, so
    a gradient that cancels to rounding noise (seen in the discriminator, depending on the random
    weights) differs in sign between two runs and the weights by a whole step: a rounding-level
    difference between the device's and the CPU's kernels would fail the comparison by chance."""

    def __init__(self, params, **kwargs):
        super().__init__(params, **{**kwargs, "eps": 1e-3})


def make_trainer(tmp_path, cfg: dict, device: torch.device):
    """An IAFacesTrainer for the config dict ``cfg`` on ``device`` (weights drawn after seed 0)."""
    from data_loader.registry import build_dataset
    from trainer.config import load_config
    from trainer.iafaces_trainer import IAFacesTrainer

    tcfg = load_config(write_config(tmp_path / "config.json", cfg))
    torch.manual_seed(0)
    return IAFacesTrainer(tcfg, build_dataset(tcfg.data_set, "train"), build_dataset(tcfg.data_set, "val"),
                          tmp_path / "run", tmp_path / "log", device)


def every_tensor(tr) -> dict:
    """Name -> tensor of everything training computes and keeps: weights, gradients, buffers,
    optimizer states (Adam's step counters aside: CPU scalars by design), EMA copies, the loss's
    constant masks."""
    out = {}
    for name, net in (("E", tr.E), ("G", tr.G), ("D", tr.D), ("e_ema", tr.e_ema), ("g_ema", tr.g_ema),
                      ("lpips", tr.loss.perceptual)):
        for k, t in list(net.named_parameters()) + list(net.named_buffers()):
            out[f"{name}.{k}"] = t
            if t.grad is not None:
                out[f"{name}.{k}.grad"] = t.grad
    for name, opt in (("opt_G", tr.opt_G), ("opt_D", tr.opt_D)):
        for i, state in enumerate(opt.state.values()):
            out.update({f"{name}.{i}.{k}": v for k, v in state.items() if k != "step"})
    out.update(box_mask=tr.loss.box_mask, comp_masks=tr.loss.comp_masks)
    return out


@pytest.mark.slow
def test_training_and_validation_run_on_the_device(tmp_path, lpips_built_once, monkeypatch):
    """Every weight, gradient, optimizer state and EMA copy is on the device after training, no
    convolution or matrix product ran on the CPU, and the losses, the validation and the saved
    checkpoint equal a CPU run's (the same kernels and random draws behind the virtual device)."""
    monkeypatch.setattr(torch.optim, "Adam", SmoothAdam)
    cfg = default_like_config()
    with VirtualDevice() as mode:
        tr = make_trainer(tmp_path / "device", cfg, VIRTUAL)
        assert tr.amp is False  # bf16 only where the device has it natively (tested below)
        mode.seen.clear()
        # One epoch of two steps (D step, G step and EMA each; lazy R1 on the second), samples
        # drawn each step, validation and checkpoints at the epoch's end.
        logs = tr.train()
        assert not mode.heavy_on_cpu(), mode.heavy_on_cpu()
        assert mode.ran_on_device("convolution_backward") > 0 and mode.ran_on_device("lerp_") > 0
        off = sorted(k for k, t in every_tensor(tr).items() if t.device != VIRTUAL)
        assert not off, off
        # Every parameter got a gradient: DDP runs with find_unused_parameters=False.
        assert all(p.grad is not None for net in (tr.E, tr.G, tr.D) for p in net.parameters())
    assert {"loss_d", "r1", "loss_g", "lpips", "swap_l1", "swap_box_l1", "box_l1", "val_avg_mse"} <= set(logs)
    assert tr.iteration == 2 and len(list((tmp_path / "device" / "log" / "samples").glob("*.png"))) == 2
    # The reference in float32 as the virtual device ran (a CPU with native bf16 would autocast).
    cpu_cfg = {**cfg, "trainer": {**cfg["trainer"], "amp": "none"}}
    cpu_logs = make_trainer(tmp_path / "cpu", cpu_cfg, torch.device("cpu")).train()
    # Near-zero means (the discriminator's fake score) move by a few 1e-6 when the thread pool's
    # split of a reduction differs between the two runs (seen after other tests changed threads).
    # SmoothAdam keeps such rounding differences at rounding size through the updates.
    assert logs == pytest.approx(cpu_logs, rel=1e-5, abs=2e-5)
    saved, cpu_saved = (torch.load(tmp_path / d / "run" / "latest.pth", weights_only=True) for d in ("device", "cpu"))
    for key in ("e_ema", "g_ema", "discriminator"):
        for name, t in saved[key].items():
            torch.testing.assert_close(t, cpu_saved[key][name], rtol=1e-4, atol=1e-5)
    exp_avg = [s["exp_avg"] for s in saved["optimizer_G"]["state"].values()]
    assert exp_avg and all(t.device.type == "cpu" for t in exp_avg)


def _noise_on_the_cpu(monkeypatch):
    from model.networks import Generator

    def noise_list(self, batch, mode, like):  # as if written without device=like.device
        return [torch.randn(batch, 1, *getattr(self.noises, f"noise_{j}").shape[-2:], dtype=like.dtype)
                for j in range(self.cfg.num_noises)]

    monkeypatch.setattr(Generator, "noise_list", noise_list)


def _ema_through_the_cpu(monkeypatch):
    import trainer.iafaces_trainer as it

    @torch.no_grad()
    def ema_update(target, source, decay):  # as if the source weights were read back to the host
        for pt, ps in zip(target.parameters(), source.parameters()):
            pt.lerp_(ps.detach().cpu(), 1.0 - decay)

    monkeypatch.setattr(it, "ema_update", ema_update)


@pytest.mark.parametrize("inject", [_noise_on_the_cpu, _ema_through_the_cpu], ids=["noise", "ema"])
def test_a_cpu_tensor_in_the_training_step_is_caught(tmp_path, monkeypatch, inject, lpips_built_once):
    """The check has teeth: a tensor created on the CPU inside the step (the generator's random
    noise, the EMA update's source) stops the step with CUDA's error."""
    with VirtualDevice():
        tr = make_trainer(tmp_path, default_like_config(), VIRTUAL)
        inject(monkeypatch)
        with pytest.raises(RuntimeError, match="found at least two devices, cpu and lazy"):
            tr.train_step(next(iter(tr.epoch_batches(0, 0))))


# ------------------------------------------------------------------------------- editing, benchmark
#: What the editing commands run on: ``resolve_device("cuda")`` gives a device without an index.
EDIT_DEVICE = torch.device(VIRTUAL.type)


def test_an_edit_runs_on_the_device(tmp_path, monkeypatch):
    """Editor.from_checkpoint on the device (the default config's networks): encode, transfer,
    apply_direction and decode run every convolution there and hand back CPU float32 images
    equal to a CPU editor's; inputs already on the device are taken as well."""
    import editing.editor as editor_module
    from data_loader.synthfaces import render_batch, sample_factors
    from editing import Editor
    from trainer.config import parse_config

    mcfg = parse_config(default_like_config(), "tiny").model_config()
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pth", model_config=mcfg)
    faces = render_batch([sample_factors(0, i) for i in (29000, 29001)], SIZE)
    normals = torch.randn(4, mcfg.encoder.comp_dim, generator=torch.Generator().manual_seed(0))
    normals = normals / normals.norm(dim=1, keepdim=True)

    def edit(ed):
        content, components = ed.encode(faces)
        swapped = ed.transfer(components, components.flip(0), "eyes")
        return ed.decode(content, ed.apply_direction(swapped, normals, 2.0, "mouth"))

    cpu_editor = Editor.from_checkpoint(ckpt, device="cpu")
    on_cpu = edit(cpu_editor)
    monkeypatch.setattr(editor_module, "resolve_device", lambda spec: EDIT_DEVICE)
    with VirtualDevice() as mode:
        ed = Editor.from_checkpoint(ckpt, device="cuda")
        weights = list(ed.encoder.parameters()) + list(ed.generator.parameters()) + list(ed.generator.buffers())
        assert ed.device == EDIT_DEVICE and all(t.device == VIRTUAL for t in weights)
        mode.seen.clear()
        out = edit(ed)
        assert not mode.heavy_on_cpu(), mode.heavy_on_cpu()
        assert mode.ran_on_device("convolution") > 0
        content, components = ed.encode(faces.to(VIRTUAL))
        again = ed.decode(content.to(VIRTUAL), components.to(VIRTUAL))
        assert ed.fingerprint() == cpu_editor.fingerprint()  # the weights read back from the device
    assert type(out) is torch.Tensor and out.device.type == "cpu" and out.dtype == torch.float32
    assert type(again) is torch.Tensor and again.device.type == "cpu"
    torch.testing.assert_close(out, on_cpu, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_a_benchmark_pass_runs_on_the_device(tmp_path, monkeypatch, capsys):
    """``python -m evaluation.synth_benchmark --device cuda`` on a tiny checkpoint with its
    discriminator: the editor's networks, the classifier and the discriminator all on the device,
    IFG scored there, the results (timings aside) those of a CPU run."""
    import json

    import evaluation.synth_benchmark.cli as cli
    from evaluation.attr_classifier import AttributeClassifier, save_classifier

    splits = {"size": SIZE, "seed": 0, "num_train": 60, "num_val": 4, "num_test": 4}
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pth", discriminator=True,
                                config={"data_set": {"type": "SynthFaces", "args": splits}})
    torch.manual_seed(0)
    save_classifier(AttributeClassifier(SIZE, width=4, max_width=8, hidden=8), tmp_path / "clf.pt")

    def run(device: str) -> dict:
        out = tmp_path / device
        assert cli.main(["--resume", str(ckpt), "--device", device, "--num", "4", "--out", str(out),
                         "--classifier", str(tmp_path / "clf.pt"), "--min_classifier_accuracy", "0",
                         "--num_label_faces", "60", "--strength_scale", "1", "--grid_rows", "0",
                         "--boundary_dir", str(tmp_path / device / "boundaries")]) == 0
        return json.loads((out / "results.json").read_text())

    on_cpu = run("cpu")
    used = {}

    class Recorded(cli.Benchmark):
        def __init__(self, editor, classifier, *args, **kwargs):
            super().__init__(editor, classifier, *args, **kwargs)
            used.update(E=editor.encoder, G=editor.generator, clf=classifier, D=self.D)

    monkeypatch.setattr(cli, "Benchmark", Recorded)
    monkeypatch.setattr(cli, "resolve_device", lambda spec: EDIT_DEVICE)
    with VirtualDevice() as mode:
        on_device = run("cuda")
    capsys.readouterr()
    assert set(used) == {"E", "G", "clf", "D"}
    assert all(t.device == VIRTUAL for net in used.values() for t in net.parameters())
    assert mode.ran_on_device("convolution") > 0
    assert on_device["setup"].pop("device") == "lazy" and on_cpu["setup"].pop("device") == "cpu"
    assert on_device["transfer"]["mouth"]["model"]["ifg"] is not None
    device_values, cpu_values = _untimed(on_device), _untimed(on_cpu)
    assert device_values.keys() == cpu_values.keys()
    for key, value in device_values.items():
        assert value == (pytest.approx(cpu_values[key], rel=1e-5, abs=1e-7, nan_ok=True)
                         if isinstance(value, float) else cpu_values[key]), key


def _untimed(results, at: str = "") -> dict:
    """Benchmark results as path -> value, without their timings (``seconds``)."""
    if isinstance(results, dict):
        return {p: v for k, sub in results.items() if k != "seconds" for p, v in _untimed(sub, f"{at}.{k}").items()}
    if isinstance(results, list):
        return {p: v for i, sub in enumerate(results) for p, v in _untimed(sub, f"{at}[{i}]").items()}
    return {at: results}


# ------------------------------------------------------------------------ choices that follow the device
def test_native_bf16_follows_the_gpu_it_is_asked_about(monkeypatch):
    """bf16 autocast needs compute capability 8.0 (Ampere) or newer on the GPU named; an older
    GPU passes ``torch.cuda.is_bf16_supported()`` by emulation, which does not count."""
    from utils.device import native_bf16

    capability = {0: (7, 5), 1: (8, 0)}  # a T4 beside an A100
    current = [0]
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability[index])
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current[0])
    assert native_bf16(torch.device("cuda", 0)) is False and native_bf16(torch.device("cuda", 1)) is True
    assert native_bf16(torch.device("cuda")) is False
    current[0] = 1
    assert native_bf16(torch.device("cuda")) is True
    assert native_bf16(VIRTUAL) is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert native_bf16(torch.device("cuda", 1)) is False


def test_pinned_batches_ddp_and_backend_follow_the_device(tmp_path, monkeypatch):
    """Pinned batches only for a GPU; DDP gets the GPU's index (none for a CPU module) and no
    search for unused parameters; NCCL between GPUs, Gloo between CPU processes."""
    import trainer.iafaces_trainer as it
    from tests.helpers import tiny_trainer
    from trainer.base_trainer import DistInfo
    from utils.device import ddp_device_args, pin_memory, process_group_backend

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert pin_memory(torch.device("cuda", 0)) is True
    assert pin_memory(torch.device("cpu")) is False and pin_memory(VIRTUAL) is False
    assert ddp_device_args(torch.device("cuda", 1)) == {"device_ids": [1], "output_device": 1}
    assert ddp_device_args(torch.device("cuda")) == {"device_ids": [3], "output_device": 3}
    assert ddp_device_args(torch.device("cpu")) == {"device_ids": None}
    assert process_group_backend("cuda") == "nccl" and process_group_backend("cpu") == "gloo"

    assert tiny_trainer(tmp_path / "one").epoch_batches(0, 0).pin_memory is False
    tr = tiny_trainer(tmp_path / "one_cuda")
    tr.device = torch.device("cuda", 0)  # before the run's loader is built
    assert tr.epoch_batches(0, 0).pin_memory is True

    wrapped = []

    class RecordedDDP:
        def __init__(self, module, **kwargs):
            wrapped.append(kwargs)

    monkeypatch.setattr(it, "DDP", RecordedDDP)
    monkeypatch.setattr(it, "broadcast_states", lambda modules, buffers_only: None)
    from data_loader.registry import build_dataset
    from trainer.config import load_config

    cfg = load_config(write_config(tmp_path / "two.json", tiny_config()))
    it.IAFacesTrainer(cfg, build_dataset(cfg.data_set, "train"), build_dataset(cfg.data_set, "val"),
                      tmp_path / "run", tmp_path / "log", torch.device("cpu"), DistInfo(rank=0, world_size=2))
    assert len(wrapped) == 3  # E, G, D
    assert all(w["device_ids"] is None and w["find_unused_parameters"] is False for w in wrapped)


def test_a_gpu_index_must_name_a_visible_gpu(monkeypatch):
    from utils.device import resolve_device
    from utils.errors import DeviceError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1) and resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(DeviceError, match="2 CUDA GPU.* use cuda:0 to cuda:1"):
        resolve_device("cuda:2")
    with pytest.raises(DeviceError, match="unknown device 'cuda:x'"):
        resolve_device("cuda:x")
