"""Two models in one studio (`--model both`): the launcher's choice, IndexTTS-2.5 loaded on its
first request, the request's model and language, the preview by the chosen model's front end,
history that remembers (and old records that read as IndexTTS2), and a 2.5 without weights that
is refused by name. Tiny random weights: form is checked, never how it sounds."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from index_tts.service import (EmotionSpec, GenerationParams, NotReady, SynthesisRequest, Synthesizer, ValidationError,
                               choose_models)
from tests.test_indextts2_engine import SR, buzz

pytestmark = pytest.mark.slow

# Greedy with a code cap: random weights seldom stop, so each segment has a known length.
FAST = GenerationParams(do_sample=False, num_beams=1, max_mel_tokens=50, max_text_tokens_per_segment=20, seed=7)
EMOTIONS = {
    "same_as_voice": dict(emotion=EmotionSpec()),
    "audio": dict(emotion=EmotionSpec(mode="audio", weight=0.6), emotion_audio=(SR, buzz(260, 1.5))),
    "vector": dict(emotion=EmotionSpec(mode="vector", weight=0.8, vector=(0, 0.8, 0, 0, 0.2, 0, 0, 0))),
    "text": dict(emotion=EmotionSpec(mode="text", weight=0.8, text="I am furious and angry about this!")),
}


def studio(default, data_dir, model, others) -> Synthesizer:
    return Synthesizer(default.factory, data_dir=data_dir, selection_reason=default.reason, model_store=default.model_store,
                       model=model, others=others).start()


@pytest.fixture(scope="module")
def both(tiny_model_dir, tiny25_model_dir, tmp_path_factory):
    model, default, others = choose_models("both", "indextts2", str(tiny_model_dir), None, None, str(tiny25_model_dir))
    synth = studio(default, tmp_path_factory.mktemp("both-data"), model, others)
    assert synth.wait_until_loaded(600) == "ready", synth.status().error
    return SimpleNamespace(synth=synth, model=model, others=others)


def request(text="Hello there. This is the second sentence.", **kw) -> SynthesisRequest:
    return SynthesisRequest(text=text, voice=(SR, buzz(140)), generation=FAST, **kw)


def test_both_serves_2_by_default_and_loads_25_on_its_first_request(both):
    synth = both.synth
    assert both.model == "indextts-2" and list(both.others) == ["indextts-2.5"]
    listed = {m.id: m for m in synth.models()}
    assert listed["indextts-2"].default and listed["indextts-2"].state == "ready" and listed["indextts-2"].engine == "IndexTTS2"
    assert listed["indextts-2.5"].state == "not loaded" and listed["indextts-2.5"].takes_language  # nothing asked yet
    assert synth.status().model == "indextts-2" and synth.status().engine == "IndexTTS2"

    # The preview asks for it first: it starts loading and answers "loading" until it is ready.
    with pytest.raises(NotReady, match="loading"):
        synth.preview_segments("Hello there.", 120, "indextts-2.5")
    assert synth.wait_until_loaded(600, model="indextts-2.5") == "ready", synth.status("indextts-2.5").error
    status = synth.status("indextts-2.5")
    assert (status.engine, status.version, status.model) == ("IndexTTS-2.5", "2.5", "indextts-2.5")


def test_the_preview_uses_the_chosen_models_front_end_and_language(both):
    synth = both.synth
    synth.wait_until_loaded(600, model="indextts-2.5")
    engine25 = synth._slot("indextts-2.5").engine
    text = "Hello there, my friend. 今天天气很好。"
    for language, code in (("auto", "auto"), ("en", "en"), ("zh-en", "zhen")):
        rows = synth.preview_segments(text, 120, "indextts-2.5", language)
        assert [(r.text, r.n_tokens) for r in rows] == [(s.text, s.n_tokens) for s in engine25.segments(text, 120, code)]
    two = synth.preview_segments(text, 120)
    assert [r.n_tokens for r in two] != [r.n_tokens for r in synth.preview_segments(text, 120, "indextts-2.5")]
    with pytest.raises(ValidationError, match="language"):
        synth.preview_segments(text, 120, "indextts-2.5", "fr")


@pytest.mark.parametrize("mode", list(EMOTIONS))
def test_25_speaks_through_the_service_in_every_emotion_mode(both, mode):
    result = both.synth.synthesize(request(model="indextts-2.5", language="en", **EMOTIONS[mode]))
    assert result.engine == "IndexTTS-2.5" and result.duration_s > 0 and len(result.segments) == 2
    saved = both.synth.get_history(result.history_id)
    assert saved["engine"] == "IndexTTS-2.5" and (saved["request"]["model"], saved["request"]["language"]) == ("indextts-2.5", "en")


def test_history_regenerates_with_its_model_and_old_records_read_as_2(both):
    synth = both.synth
    made = synth.synthesize(request(model="indextts-2.5", language="ja", text="Good morning to you."))
    again = synth.regenerate(made.history_id)
    assert again.engine == "IndexTTS-2.5" and synth.get_history(again.history_id)["request"]["language"] == "ja"

    plain = synth.synthesize(request())  # no model named: the default
    assert plain.engine == "IndexTTS2" and synth.get_history(plain.history_id)["request"]["model"] == "indextts-2"
    # A record written before the model choice (no model, no language) is IndexTTS2's.
    path = synth.history._record_path(made.history_id)
    record = json.loads(path.read_text())
    del record["request"]["model"], record["request"]["language"]
    path.write_text(json.dumps(record))
    old = synth.request_from_history(made.history_id)
    assert (old.model, old.language) == ("indextts-2", "auto")
    assert synth.regenerate(made.history_id).engine == "IndexTTS2"


def test_bad_model_and_language_values_name_their_field(both):
    for value in ("indextts-3", "tts-1", 2.5, ""):
        with pytest.raises(ValidationError, match="^model: must be one of indextts-2, indextts-2.5"):
            both.synth.synthesize(request(model=value))
    for value in ("fr", "", None, 3):
        with pytest.raises(ValidationError, match="^language: must be one of auto, zh, en, ja, es, ar, zh-en"):
            both.synth.synthesize(request(model="indextts-2.5", language=value))


def test_25_without_weights_is_refused_by_name_never_a_crash(tmp_path):
    empty_hub = tmp_path / "hub"
    empty_hub.mkdir()
    # --model both with nothing downloaded: the quick voice stands in for IndexTTS2 only.
    model, default, others = choose_models("both", "auto", None, str(empty_hub), None)
    assert model == "indextts-2" and others["indextts-2.5"].factory is None
    assert "download --model 2.5" in others["indextts-2.5"].reason
    synth = studio(default, tmp_path / "data", model, others)
    assert synth.wait_until_loaded(30) == "ready" and synth.status().is_quick_voice
    assert [m.available for m in synth.models()] == [True, False]
    with pytest.raises(ValidationError, match="^model: indextts-2.5 is not available here: IndexTTS-2.5 weights missing"):
        synth.synthesize(request(model="indextts-2.5"))
    with pytest.raises(ValidationError, match="download --model 2.5"):
        synth.preview_segments("Hello.", 120, "indextts-2.5")
    assert synth.synthesize(request()).engine.startswith("Quick voice")  # the studio goes on

    # --model 2.5 alone without its weights: the studio starts, and says why it cannot speak.
    model, default, others = choose_models("2.5", "auto", None, str(empty_hub), None)
    synth = studio(default, tmp_path / "data25", model, others)
    status = synth.status()
    assert (model, others, status.state, status.model) == ("indextts-2.5", {}, "failed", "indextts-2.5")
    assert "download --model 2.5" in status.error and "download --model 2.5" in status.help
    with pytest.raises(ValidationError, match="^model: indextts-2.5 is not available here"):
        synth.synthesize(request())
    with pytest.raises(ValidationError, match="^model: indextts-2 is not served here; start the studio with --model 2 or"):
        synth.synthesize(request(model="indextts-2"))
