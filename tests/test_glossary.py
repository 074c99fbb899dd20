"""Custom term pronunciations: the store, the per-call glossary in the normalizer, the quick voice
speaking the reading, and the service passing the glossary only when asked to."""

from __future__ import annotations

import json

import numpy as np
import pytest

from index_tts.engines.base import EngineOutput, EngineRequest, GenerationParams, Segment
from index_tts.engines.quick import QuickVoiceEngine, apply_glossary
from index_tts.service import Synthesizer, SynthesisRequest, ValidationError
from index_tts.storage import MAX_GLOSSARY_CHARS, GlossaryStore
from index_tts.text.normalize import TextNormalizer

SR = 16000


def voice(seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 10 * np.sin(2 * np.pi * 4 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 12))
    return (0.2 * wave / np.abs(wave).max()).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# storage


def test_store_add_list_remove_persists(tmp_path):
    store = GlossaryStore(tmp_path / "glossary.json")
    assert store.list() == []
    glossary, replaced = store.add("  GPU ", zh="图形处理器", en="graphics processor")
    assert not replaced
    assert glossary == {"GPU": {"zh": "图形处理器", "en": "graphics processor"}}
    store.add("AI", en="artificial intelligence")  # one reading is enough
    # A second store on the same file sees the same terms: they live on disk.
    other = GlossaryStore(tmp_path / "glossary.json")
    assert other.list() == [("AI", "", "artificial intelligence"), ("GPU", "图形处理器", "graphics processor")]
    # Terms match case-insensitively: adding "gpu" replaces "GPU" rather than adding a twin.
    _, replaced = other.add("gpu", zh="显卡")
    assert replaced
    assert store.load() == {"AI": {"en": "artificial intelligence"}, "gpu": {"zh": "显卡"}}
    assert store.remove("Ai") is True
    assert store.remove("AI") is False
    assert list(store.load()) == ["gpu"]
    document = json.loads((tmp_path / "glossary.json").read_text(encoding="utf-8"))
    assert document["terms"] == {"gpu": {"zh": "显卡"}}


def test_store_writes_atomically(tmp_path, monkeypatch):
    store = GlossaryStore(tmp_path / "glossary.json")
    store.add("GPU", en="graphics processor")
    before = (tmp_path / "glossary.json").read_bytes()

    import index_tts.fileio as fileio

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", crash)
    with pytest.raises(OSError):
        store.add("CPU", en="processor")
    # The old file is intact and no temporary file is left behind.
    assert (tmp_path / "glossary.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["glossary.json"]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"terms": {"GPU": 5}}', b"\xff\xfe\x00"])
def test_corrupt_file_is_reported_and_read_as_empty(tmp_path, content):
    path = tmp_path / "glossary.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    store = GlossaryStore(path)
    assert store.load() == {}
    assert "glossary.json" in store.problem
    # Adding a term replaces the corrupt file with a good one.
    store.add("GPU", en="graphics processor")
    assert store.load() == {"GPU": {"en": "graphics processor"}}
    assert store.problem == ""


@pytest.mark.parametrize(
    "term, zh, en, field",
    [
        ("", "读音", None, "term"),
        ("   ", "读音", None, "term"),
        ("x" * (MAX_GLOSSARY_CHARS + 1), "读音", None, "term"),
        ("GPU", "图形\n处理器", None, "zh"),
        ("GPU", None, "graphics\x00processor", "en"),
        ("GPU", None, "y" * (MAX_GLOSSARY_CHARS + 1), "en"),
        ("GP\tU", "读音", None, "term"),
        ("GPU", "", "  ", "zh"),  # no reading at all
        (5, "读音", None, "term"),
    ],
)
def test_bad_input_is_rejected_naming_the_field(tmp_path, term, zh, en, field):
    store = GlossaryStore(tmp_path / "glossary.json")
    with pytest.raises(ValueError) as err:
        store.add(term, zh=zh, en=en)
    assert str(err.value).startswith(field)
    assert not (tmp_path / "glossary.json").exists()


# ---------------------------------------------------------------------------------------------
# normalizer: a per-call glossary, applied before the FST normalisers, on both paths


class Echo:
    """Stands in for a WeTextProcessing normaliser and records what it was given."""

    def __init__(self):
        self.seen: list[str] = []

    def normalize(self, text: str) -> str:
        self.seen.append(text)
        return text


@pytest.fixture()
def normalizer() -> TextNormalizer:
    n = TextNormalizer()
    n._zh, n._en = Echo(), Echo()  # glossary substitution happens before them; no FSTs needed
    return n


GLOSSARY = {"GPU": {"zh": "图形处理器", "en": "graphics processor"}, "GPUs": {"en": "graphics processors"}}


def test_normalizer_applies_per_call_glossary_on_both_paths(normalizer):
    zh = normalizer.normalize("我的gpu很快", glossary=GLOSSARY)
    assert normalizer._zh.seen[-1] == "我的图形处理器很快"
    assert zh == "我的图形处理器很快"
    # English path: the English reading; longest term first, so "GPUs" is not read as "GPU" + s.
    en = normalizer.normalize("Two GPUs and one gpu.", glossary=GLOSSARY)
    assert normalizer._en.seen[-1] == "Two graphics processors and one graphics processor."
    assert en == "Two graphics processors and one graphics processor."


def test_per_call_glossary_leaves_no_state(normalizer):
    normalizer.normalize("The GPU is hot.", glossary=GLOSSARY)
    assert normalizer.glossary == {} and normalizer.enable_glossary is False
    assert normalizer.normalize("The GPU is hot.") == "The GPU is hot."
    assert normalizer._en.seen[-1] == "The GPU is hot."


def test_per_call_glossary_wins_over_configured_one(normalizer):
    normalizer.enable_glossary = True
    normalizer.glossary = {"GPU": {"en": "gee pee you"}, "TTS": {"en": "text to speech"}}
    out = normalizer.normalize("gpu TTS", glossary={"gpu": {"en": "graphics card"}})
    assert out == "graphics card text to speech"
    assert normalizer.glossary == {"GPU": {"en": "gee pee you"}, "TTS": {"en": "text to speech"}}


def test_term_without_reading_for_the_path_stays(normalizer):
    assert normalizer.normalize("我有GPUs", glossary=GLOSSARY) == "我有图形处理器s"
    assert normalizer.normalize("我有GPUs", glossary={"GPUs": {"en": "graphics processors"}}) == "我有GPUs"


# ---------------------------------------------------------------------------------------------
# quick voice


def test_quick_substitution_follows_the_language():
    assert apply_glossary("The gpu is hot.", GLOSSARY) == "The graphics processor is hot."
    assert apply_glossary("Two GPUS.", GLOSSARY) == "Two graphics processors."
    assert apply_glossary("这块GPU很快。", GLOSSARY) == "这块图形处理器很快。"
    assert apply_glossary("这块GPUs很快。", {"GPUs": {"en": "x"}}) == "这块GPUs很快。"
    # One pass: a reading that contains another term is not substituted again.
    assert apply_glossary("AI", {"AI": {"en": "an AI model"}, "model": {"en": "M"}}) == "an AI model"


@pytest.fixture(scope="module")
def engine() -> QuickVoiceEngine:
    return QuickVoiceEngine.load()


def speak(engine, text, glossary=None):
    request = EngineRequest(text=text, voice=voice(), voice_sr=SR, voice_key="glossary-voice",
                            generation=GenerationParams(seed=3), glossary=glossary or {})
    return engine.synthesize(request).audio


def test_quick_voice_speaks_the_reading(engine):
    glossary = {"NASA": {"en": "national space agency", "zh": "美国航天局"}}
    with_glossary = speak(engine, "NASA is here.", glossary)
    without = speak(engine, "NASA is here.")
    written_out = speak(engine, "national space agency is here.")
    assert not np.array_equal(with_glossary, without)
    assert np.array_equal(with_glossary, written_out)


# ---------------------------------------------------------------------------------------------
# service


class RecordingEngine:
    name, version, device = "Recorder", "1", "cpu"

    def __init__(self):
        self.requests: list[EngineRequest] = []

    def segments(self, text, max_tokens):
        return [Segment(text, 1)]

    def synthesize(self, request, progress):
        self.requests.append(request)
        return EngineOutput(np.full(2400, 1000, np.int16), 24000, [(request.text, 0.0, 0.1)])


def test_service_passes_glossary_only_when_enabled(tmp_path):
    engine = RecordingEngine()
    synth = Synthesizer(lambda progress: engine, data_dir=tmp_path).start()
    assert synth.wait_until_loaded(10) == "ready"
    synth.glossary.add("GPU", zh="图形处理器", en="graphics processor")
    assert (tmp_path / "glossary.json").is_file()

    synth.synthesize(SynthesisRequest(text="The GPU.", voice=(SR, voice())))
    synth.synthesize(SynthesisRequest(text="The GPU.", voice=(SR, voice()), use_glossary=False))
    assert engine.requests[0].glossary == {"GPU": {"zh": "图形处理器", "en": "graphics processor"}}
    assert engine.requests[1].glossary == {}
    # The request keeps the text as typed: substitution is the engine's front end's job.
    assert engine.requests[0].text == "The GPU."

    # A later change to the store reaches the next request.
    synth.glossary.remove("GPU")
    synth.synthesize(SynthesisRequest(text="The GPU.", voice=(SR, voice())))
    assert engine.requests[2].glossary == {}


def test_validate_checks_use_glossary():
    with pytest.raises(ValidationError) as err:
        SynthesisRequest(text="hi there", voice=(SR, voice()), use_glossary="yes").validate()
    assert err.value.field == "use_glossary"
    request = SynthesisRequest(text="hi there", voice=(SR, voice()))
    assert request.validate(glossary={"hi": {"en": "hello"}}).glossary == {"hi": {"en": "hello"}}
    off = SynthesisRequest(text="hi there", voice=(SR, voice()), use_glossary=False)
    assert off.validate(glossary={"hi": {"en": "hello"}}).glossary == {}
