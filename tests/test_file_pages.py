"""The voice front end's weights stay file-backed and leave RAM between new voices
(engines/file_pages.py, engines/precision.py GPT_FRONT_END), without changing any result."""

from __future__ import annotations

import sys

import pytest
import torch

from index_tts.bench.workloads import reference_signal
from index_tts.emotion import EmotionSpec
from index_tts.engines import file_pages
from index_tts.engines.indextts2 import IndexTTS2Engine

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")


@linux_only
def test_release_drops_the_pages_of_a_mapped_file_and_keeps_its_values(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.arange(2**20, dtype=torch.float32)}, path)  # 4 MiB
    w = torch.load(path, mmap=True, weights_only=True)["w"]
    assert w.sum().item() == float(sum(range(2**20)))  # every page read
    assert file_pages.resident_bytes([path]) >= 4 * 2**20
    assert file_pages.release([path]) >= 4 * 2**20
    assert file_pages.resident_bytes([path]) < 2**16  # at most a page or so touched since
    assert torch.equal(w, torch.arange(2**20, dtype=torch.float32))  # read back from the file


@linux_only
def test_a_modified_private_mapping_is_left_alone(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(2**18)}, path)
    w = torch.load(path, mmap=True, weights_only=True)["w"]
    w[:1000] = 7.0  # copy-on-write: only this process's pages hold the change
    assert file_pages.release([path]) == 0
    assert w[:1000].eq(7.0).all() and w[1000:].eq(0.0).all()


def test_release_of_unmapped_files_is_a_no_op(tmp_path):
    assert file_pages.release([tmp_path / "missing.pt"]) == 0
    assert file_pages.resident_bytes([tmp_path / "missing.pt"]) == 0


@linux_only
def test_the_voice_front_end_is_read_in_place_and_released_after_each_new_voice(tiny_model_dir):
    engine = IndexTTS2Engine.load(tiny_model_dir, device="cpu")
    files = [tiny_model_dir / engine.cfg["gpt_checkpoint"], tiny_model_dir / "w2v_bert" / "model.safetensors"]
    assert file_pages.resident_bytes(files) == 0  # mapped, nothing resident after loading

    wav = reference_signal(3.0)
    first = engine.voice_prompt(wav, 24000)
    assert file_pages.resident_bytes(files) == 0  # released after the voice
    before = engine.emotion_vector(first, EmotionSpec())

    engine.w2v(torch.zeros(1, 20, 160), torch.ones(1, 20, dtype=torch.long))
    assert file_pages.resident_bytes(files[1:]) > 0  # w2v-BERT really reads its file in place
    engine.gpt.get_conditioning(first.spk_cond_emb)
    assert file_pages.resident_bytes(files[:1]) > 0  # and so do the GPT's conditioners
    engine._release_front_end()
    assert file_pages.resident_bytes(files) == 0

    again = engine.voice_prompt(wav, 24000)  # its weights read back from the file
    for name in first.__dataclass_fields__:
        assert torch.equal(getattr(first, name), getattr(again, name)), name
    assert torch.equal(engine.emotion_vector(again, EmotionSpec()), before)
