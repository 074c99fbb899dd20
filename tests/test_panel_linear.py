"""Our own few-row linear kernel (modules/panel_linear.c): it computes F.linear, in fp32 and with
bf16 weights, for any shape; where it cannot be built it says why and is never offered."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from index_tts.modules import kernels, panel_linear
from index_tts.modules.packed_linear import KernelLinear, apply_kernels

needs_kernel = pytest.mark.skipif(not panel_linear.available(),
                                  reason=f"the panel kernel cannot be built here: {panel_linear.unavailable_reason()}")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(kernels.FORCE_ENV, raising=False)


def test_panels_hold_the_weight_exactly():
    w = torch.randn(37, 45)  # 37 outputs: the last panel is zero-padded
    panels = panel_linear.pack(w)
    assert panels.shape == (3, 45, 16)
    assert torch.equal(panels[2, :, 5:], torch.zeros(45, 11))
    assert torch.equal(panel_linear.unpack(panels, 37), w)
    assert torch.equal(panel_linear.unpack(panel_linear.pack(w, torch.bfloat16), 37), w.bfloat16().float())


@needs_kernel
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 9, 57])
@pytest.mark.parametrize("n_out", [16, 37, 130])
def test_the_kernel_computes_f_linear(rows, n_out):
    g = torch.Generator().manual_seed(rows * 100 + n_out)
    w, b, x = torch.randn(n_out, 83, generator=g), torch.randn(n_out, generator=g), torch.randn(rows, 83, generator=g)
    torch.testing.assert_close(panel_linear.linear(x, panel_linear.pack(w), b, n_out), F.linear(x, w, b),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(panel_linear.linear(x, panel_linear.pack(w), None, n_out), F.linear(x, w),
                               atol=1e-5, rtol=1e-5)
    # bf16 weights: exactly the rounded weights, multiplied and summed in fp32
    torch.testing.assert_close(panel_linear.linear(x, panel_linear.pack(w, torch.bfloat16), b, n_out),
                               F.linear(x, w.bfloat16().float(), b), atol=1e-5, rtol=1e-5)


@needs_kernel
def test_the_result_does_not_depend_on_the_thread_count():
    g = torch.Generator().manual_seed(1)
    w, x = torch.randn(300, 256, generator=g), torch.randn(3, 256, generator=g)
    panels, threads = panel_linear.pack(w), torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = panel_linear.linear(x, panels, None, 300)
        torch.set_num_threads(max(2, threads))
        assert panel_linear.library().panel_linear_threads() == max(2, threads)  # torch's OpenMP runtime
        many = panel_linear.linear(x, panels, None, 300)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many)  # each output is one in-order sum, whichever thread computes it


@needs_kernel
def test_rows_must_be_float32():
    with pytest.raises(TypeError, match="float32"):
        panel_linear.linear(torch.zeros(3, 16, dtype=torch.float64), panel_linear.pack(torch.zeros(16, 16)), None, 16)


@needs_kernel
def test_a_layer_on_the_panel_kernel_keeps_its_keys_and_values(monkeypatch):
    monkeypatch.setenv(kernels.FORCE_ENV, "panel")
    model = nn.Sequential(nn.Linear(40, 24))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 40)
    with torch.no_grad():
        plain = model(x)
        apply_kernels(model, kernels.KernelTable(), rows=3)
        assert isinstance(model[0], KernelLinear) and model[0].kernel == "panel" and model[0].weight is None
        torch.testing.assert_close(model(x), plain, atol=1e-5, rtol=1e-5)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_without_a_compiler_the_kernel_is_never_offered(monkeypatch, tmp_path):
    monkeypatch.setattr(panel_linear, "_state", {})
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    assert not panel_linear.available()
    assert "no-such-compiler" in panel_linear.unavailable_reason()
    monkeypatch.setenv(kernels.FORCE_ENV, "panel")
    model = nn.Sequential(nn.Linear(40, 24))
    apply_kernels(model, kernels.KernelTable(), rows=3)
    assert model[0].kernel != "panel"  # forced, but not allowed here: the first allowed candidate


@needs_kernel
def test_the_library_is_built_once_per_machine_into_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(panel_linear, "_state", {})
    assert panel_linear.available()
    built = list((tmp_path / "cache" / "index_tts").glob("panel_linear-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    monkeypatch.setattr(panel_linear, "_state", {})
    monkeypatch.setattr(panel_linear, "_build", lambda *a: pytest.fail("built a second time"))
    assert panel_linear.available() and built[0].stat().st_mtime_ns == stamp
