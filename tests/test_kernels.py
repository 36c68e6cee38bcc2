"""The Triton kernels against the eager network.

Triton picks interpreter or compiler once, when it is first imported (reading TRITON_INTERPRET),
so the two cannot share a process. Every test taking `device` runs here on CUDA when a GPU exists,
and in a child pytest started with TRITON_INTERPRET=1 on CPU tensors (`test_in_the_interpreter`
runs it once and reports each test's cases); no other test file sees the variable. Shapes stay
tiny: the interpreter runs each program in numpy.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import torch
import torch.nn.functional as F

import cod_lite
from cod_lite import kernels
from cod_lite.kernels import ops
from cod_lite.models.condition_codec import VectorQuantizer
from cod_lite.models.config import ModelConfig
from cod_lite.models.network import CodLiteNet, channel_layer_norm

IN_INTERPRETER = ops.interpret_mode()  # read before triton is imported, as triton will read it
pytest.importorskip("triton")

TINY = dict(hidden_size=64, hidden_size_x=8, num_blocks=3, num_cond_blocks=2, encoder_channels=32, ds=16)


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        if IN_INTERPRETER:
            params = ["interpret"]
        else:
            no_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
            params = [pytest.param("cuda", marks=no_gpu)]
        metafunc.parametrize("device", params, indirect=True)


@pytest.fixture
def device(request, monkeypatch) -> torch.device:
    if request.param == "interpret":
        return torch.device("cpu")
    # eager fp32 convs and matmuls would otherwise run in TF32 and be the less accurate side
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    return torch.device("cuda")


def tiny_net(device: torch.device, **overrides) -> CodLiteNet:
    torch.manual_seed(0)
    return CodLiteNet(ModelConfig(**{**TINY, **overrides})).eval().to(device)


def layout(x: torch.Tensor, name: str) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if name == "channels_last" else x


@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
@pytest.mark.parametrize("with_branch", [False, True])
@pytest.mark.parametrize("mod_batch", [1, 2])
def test_layer_norm_modulate(device, memory_format, with_branch, mod_batch):
    torch.manual_seed(1)
    c = 48  # not a power of two: masked channels
    x = layout(torch.randn(2, c, 5, 7, device=device) * 3 + 1, memory_format)
    shift, scale = torch.randn(2, mod_batch, 6 * c, device=device)[:, :, :c]  # strided rows, as mod.chunk gives
    gate = torch.randn(mod_batch, c, device=device)
    branch = torch.randn(2, c, 5, 7, device=device) if with_branch else None

    x_new, out = ops.layer_norm_modulate(x, shift, scale, branch, gate if with_branch else None)

    expected_x = x + gate[:, :, None, None] * branch if with_branch else x
    expected = channel_layer_norm(expected_x) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
    assert out.stride() == x.stride()
    torch.testing.assert_close(x_new, expected_x, atol=1e-5, rtol=0)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
def test_dwconv3x3_gelu_and_channel_sums(device, memory_format):
    torch.manual_seed(2)
    c = 80  # two channel blocks of 64, the second partly masked
    conv = torch.nn.Conv2d(c, c, 3, padding=1, groups=c).to(device)
    x = layout(torch.randn(2, c, 9, 11, device=device), memory_format)  # 99 pixels: two pixel blocks

    out, sums = ops.dwconv3x3_gelu(x, conv.weight, conv.bias)

    with torch.no_grad():
        expected = F.gelu(conv(x))
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(sums, expected.sum((2, 3)), atol=1e-3, rtol=0)


@pytest.mark.parametrize(("hidden_x", "depth"), [(8, 1), (24, 2), (16, 0)])
def test_pixel_head(device, hidden_x, depth):
    """Against CodLiteNet.denoise at t = 0, x_t = 0, fed the trunk output denoise computed itself."""
    net = tiny_net(device, hidden_size=32, hidden_size_x=hidden_x, num_blocks=1 + depth, num_cond_blocks=1)
    torch.manual_seed(3)
    cond = torch.randn(2, 32, 2, 3, device=device)
    trunk = {}
    hook = net.dec_net.register_forward_hook(lambda module, args, out: trunk.update(s=args[1]))
    with torch.no_grad():
        expected = net.denoise(torch.zeros(2, 3, 32, 48, device=device), None, cond)
    hook.remove()

    out = ops.pixel_head(net, cond, trunk["s"])

    assert expected.abs().max() > 0.1  # a real image, not a vanishing one
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


def test_vq_indices_random(device):
    torch.manual_seed(4)
    vq = VectorQuantizer(100, 12).to(device)  # 100 codes: two chunks of 64; dim 12 padded to 16
    z = torch.randn(2, 12, 3, 5, device=device)
    with torch.no_grad():
        expected = vq.indices(z)
    out = ops.vq_indices(z, vq.embedding.weight)
    assert expected.unique().numel() > 5
    assert torch.equal(out, expected)


def test_vq_indices_ties_go_to_the_lowest_index(device):
    torch.manual_seed(5)
    dim = 16
    vq = VectorQuantizer(100, dim).to(device).requires_grad_(False)
    codebook = vq.embedding.weight
    codebook[70] = codebook[3]  # exact duplicate in another chunk of 64
    codebook[9] = codebook[4]  # exact duplicate in the same chunk
    codebook[20] = 0  # codes 20 and 40 are +-0.5 e0: equidistant from any z with z0 = 0
    codebook[40] = 0
    codebook[20, 0], codebook[40, 0] = 0.5, -0.5
    z = torch.zeros(1, dim, 1, 4, device=device)
    z[0, :, 0, 0] = codebook[70] + 0.01
    z[0, :, 0, 1] = codebook[9] - 0.01
    z[0, 1:, 0, 2] = 0.1
    z[0, 1:, 0, 3] = -0.25
    expected = vq.indices(z)
    out = ops.vq_indices(z, codebook)
    assert expected.flatten().tolist() == [3, 4, 20, 20]
    assert torch.equal(out, expected)


def test_end_to_end_quantize_and_reconstruct(device):
    net = tiny_net(device)
    torch.manual_seed(6)
    image = torch.rand(1, 3, 32, 48, device=device)
    with torch.no_grad():  # seed the codebook near the latent so the 6 cells pick distinct codes
        z = net.y_embedder.encoder(image).permute(0, 2, 3, 1).reshape(-1, net.config.codebook_dim)
        codes = torch.randperm(net.config.codebook_size, device=device)[: z.shape[0]]
        net.y_embedder.bottleneck.embedding.weight[codes] = z + 0.01 * torch.randn_like(z)

    indices = kernels.quantize(net, image)
    expected_indices = net.quantize(image)
    assert expected_indices.unique().numel() == 6
    assert torch.equal(indices, expected_indices)

    out = kernels.reconstruct(net, indices)
    with torch.no_grad():
        expected = net.reconstruct(indices)
    assert out.shape == (1, 3, 32, 48) and out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=1e-3, rtol=0)


def test_reconstruct_bf16_is_as_close_to_fp32_as_eager_bf16(device):
    net = tiny_net(device)
    indices = torch.randint(0, net.config.codebook_size, (2, 2, 3), device=device)
    with torch.no_grad():
        reference = net.reconstruct(indices)
        net = net.to(torch.bfloat16)
        eager_error = (net.reconstruct(indices).float() - reference).abs().max()
    out = kernels.reconstruct(net, indices)
    assert out.dtype == torch.bfloat16
    assert (out.float() - reference).abs().max() <= 1.5 * eager_error


def test_a_codec_with_precision_triton_runs_the_kernels_and_matches_the_exact_codec(device):
    from cod_lite.codec import Codec

    image = (torch.rand(48, 64, 3, generator=torch.Generator().manual_seed(2)) * 255).to(torch.uint8).numpy()
    exact = Codec(tiny_net(device), "00" * 32, device=str(device), precision="fp32")
    fused = Codec(tiny_net(device), "00" * 32, device=str(device), precision="triton")
    assert fused.inference.uses_kernels and fused.precision == "fp32 triton" and not exact.inference.uses_kernels
    indices = exact.quantize(image)
    assert (fused.quantize(image) == indices).all()
    diff = fused.reconstruct(indices, 48, 64).astype(int) - exact.reconstruct(indices, 48, 64).astype(int)
    assert abs(diff).max() <= 1 and (diff != 0).mean() < 0.01  # rounding of outputs within ~1e-6


def test_auto_runs_the_kernels_on_a_cuda_gpu_only(monkeypatch):
    from cod_lite.inference import uses_kernels

    monkeypatch.setattr(kernels, "available", lambda: True)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert uses_kernels("auto", cuda, compile=False) and uses_kernels("triton", cpu, compile=False)
    assert not uses_kernels("auto", cpu, compile=False) and not uses_kernels("auto", cuda, compile=True)
    assert not uses_kernels("bf16", cuda, compile=False) and not uses_kernels("fp32", cuda, compile=False)
    monkeypatch.setattr(kernels, "available", lambda: False)
    assert not uses_kernels("auto", cuda, compile=False)
    with pytest.raises(cod_lite.InputError, match="needs the triton package"):
        uses_kernels("triton", cuda, compile=False)


def test_a_failing_kernel_hands_over_to_the_torch_path_with_one_warning(monkeypatch):
    calls = []

    def broken(net, x):
        calls.append("kernel")
        raise RuntimeError("no sm_XX support")

    monkeypatch.setattr(kernels, "reconstruct", broken)
    fallback = (lambda x: x, lambda x: x + 1)
    _, reconstruct = kernels.codec_methods(None, fallback)
    with pytest.warns(RuntimeWarning, match="no sm_XX support"):
        assert reconstruct(torch.zeros(1)).item() == 1
    assert reconstruct(torch.zeros(1)).item() == 1 and calls == ["kernel"]  # not tried again
    _, strict = kernels.codec_methods(None)  # explicit precision="triton": no fallback, the error shows
    with pytest.raises(RuntimeError, match="no sm_XX"):
        strict(torch.zeros(1))


def test_cpu_tensors_without_interpreter_are_refused(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="CUDA"):
        ops.vq_indices(torch.zeros(1, 4, 1, 1), torch.zeros(3, 4))


def test_available_follows_the_interpreter_switch(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert kernels.available()
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert kernels.available() == torch.cuda.is_available()


def test_package_imports_and_reports_unavailable_without_triton():
    code = (
        "import sys; sys.modules['triton'] = None\n"  # makes `import triton` fail
        "import cod_lite, cod_lite.kernels as k\n"
        "assert not k.available()\n"
        "print('ok')"
    )
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


DEVICE_TESTS = [
    name for name, fn in list(globals().items()) if name.startswith("test_") and "device" in inspect.signature(fn).parameters
]


@pytest.fixture(scope="module")
def interpreter_report(tmp_path_factory) -> dict[str, dict[str, str]]:
    """Runs DEVICE_TESTS in a child pytest with TRITON_INTERPRET=1: test name -> {case: '' or the failure}."""
    report = tmp_path_factory.mktemp("interpreter") / "report.xml"
    command = [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
    command += ["-k", f"({' or '.join(DEVICE_TESTS)}) and not test_in_the_interpreter"]
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    root = os.path.dirname(os.path.dirname(__file__))
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root, timeout=900)
    if not report.exists():
        pytest.fail(f"the interpreter run wrote no report:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    cases: dict[str, dict[str, str]] = {}
    for case in ET.parse(report).iter("testcase"):
        name = case.get("name")
        problems = [
            f"{p.tag}: {p.get('message')}\n{p.text or ''}"
            for p in case if p.tag in ("failure", "error", "skipped")
        ]
        cases.setdefault(name.split("[")[0], {})[name] = "\n".join(problems)
    return cases


@pytest.mark.skipif(IN_INTERPRETER, reason="this process is the interpreter run")
@pytest.mark.parametrize("name", DEVICE_TESTS)
def test_in_the_interpreter(interpreter_report, name):
    """Each kernel test ran, and passed, on CPU tensors in triton's interpreter (none skipped)."""
    cases = interpreter_report.get(name)
    assert cases, f"{name} did not run in the interpreter"
    problems = {case: text for case, text in cases.items() if text}
    assert not problems, "\n\n".join(f"{case}\n{text}" for case, text in problems.items())
