"""The emotion rules: upstream WebUI bias + sum<=0.8 cap, infer()'s scale/truncate, EmotionSpec checks."""

from __future__ import annotations

import math

import pytest

from index_tts.emotion import (
    DEFAULT_WEIGHT,
    EMOTIONS,
    WEBUI_BIAS,
    WEBUI_MAX_SUM,
    EmotionSpec,
    normalize_webui_vector,
    scale_vector,
)


def test_dimension_order_and_bias_table_match_upstream():
    assert EMOTIONS == ("happy", "angry", "sad", "afraid", "disgusted", "melancholic", "surprised", "calm")
    assert WEBUI_BIAS == (0.9375, 0.875, 1.0, 1.0, 0.9375, 0.9375, 0.6875, 0.5625)
    assert DEFAULT_WEIGHT == 0.65


def test_bias_applied_per_emotion_below_cap():
    vec = [0.0] * 8
    vec[1] = 0.8  # angry
    out = normalize_webui_vector(vec)
    assert out[1] == pytest.approx(0.8 * 0.875)
    assert sum(out) == pytest.approx(0.7)
    calm_only = normalize_webui_vector([0, 0, 0, 0, 0, 0, 0, 1.0])
    assert calm_only[7] == pytest.approx(0.5625)


def test_sum_capped_at_point_eight_keeping_proportions():
    vec = [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # biased: 0.9375 + 1.0
    out = normalize_webui_vector(vec)
    assert sum(out) == pytest.approx(WEBUI_MAX_SUM)
    assert out[0] / out[2] == pytest.approx(0.9375 / 1.0)
    assert all(v == 0 for i, v in enumerate(out) if i not in (0, 2))


def test_sum_exactly_at_cap_is_untouched():
    vec = [0.0, 0.0, 0.8, 0.0, 0.0, 0.0, 0.0, 0.0]  # sad has bias 1.0
    assert normalize_webui_vector(vec) == pytest.approx(tuple(vec))


def test_wrong_length_vector_is_rejected():
    with pytest.raises(ValueError):
        normalize_webui_vector([0.1] * 7)


def test_scale_vector_truncates_to_four_decimals():
    vec = (0.33333, 0.7, 0.0, 0.12345, 0, 0, 0, 0)
    out = scale_vector(vec, 0.65)
    assert out[0] == 0.2166  # 0.33333*0.65 = 0.21666..., truncated, not rounded
    assert out[1] == int(0.7 * 0.65 * 10000) / 10000
    assert out[3] == 0.0802  # 0.0802425 -> 0.0802
    assert all(abs(v * 10000 - round(v * 10000)) < 1e-6 for v in out)  # at most 4 decimals


def test_scale_vector_identity_at_one_and_clamped():
    vec = (0.123456, 0.5, 0, 0, 0, 0, 0, 0)
    assert scale_vector(vec, 1.0) == vec  # no truncation when the scale is 1
    assert scale_vector(vec, 3.0) == vec  # clamped to 1
    assert scale_vector(vec, -1.0) == (0.0,) * 8  # clamped to 0


def test_emotion_spec_defaults_are_valid():
    EmotionSpec().validate()
    assert EmotionSpec().mode == "same_as_voice" and EmotionSpec().weight == DEFAULT_WEIGHT


@pytest.mark.parametrize(
    "spec, needle",
    [
        (EmotionSpec(mode="loud"), "emotion.mode"),
        (EmotionSpec(weight=-0.1), "emotion.weight"),
        (EmotionSpec(weight=math.inf), "emotion.weight"),
        (EmotionSpec(weight="0.5"), "emotion.weight"),
        (EmotionSpec(mode="vector"), "emotion.vector"),
        (EmotionSpec(mode="vector", vector=(0.0,) * 9), "emotion.vector"),
        (EmotionSpec(mode="vector", vector=(0.0,) * 7 + (1.3,)), "emotion.vector.calm"),
        (EmotionSpec(mode="vector", vector=(math.nan,) + (0.0,) * 7), "emotion.vector.happy"),
        (EmotionSpec(mode="audio"), "emotion.audio"),
        (EmotionSpec(mode="text", text=None), "emotion.text"),
    ],
)
def test_emotion_spec_validation_names_the_field(spec, needle):
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        spec.validate()


def test_emotion_spec_accepts_valid_modes():
    EmotionSpec(mode="vector", vector=(0.2,) * 8, weight=1.0).validate()
    EmotionSpec(mode="vector", vector=(1.2,) + (0.0,) * 7).validate()  # text-mode scores reach 1.2
    EmotionSpec(mode="text", text="").validate()
    EmotionSpec(mode="audio", audio=[0.0] * 10, audio_sr=16000).validate()


# -- one record shape and one set of built-in presets ---------------------------------------------

def test_records_round_trip_and_old_shapes_stay_readable():
    from index_tts.emotion import EmotionSpec as Spec

    spec = Spec(mode="vector", vector=(0.1,) * 8, weight=0.7, use_random=True)
    assert Spec.from_record(spec.to_record()) == spec
    assert Spec.from_record(Spec(mode="text", text="tired").to_record()) == Spec(mode="text", text="tired")
    # A dialogue role written before use_random was recorded:
    assert Spec.from_record({"mode": "vector", "weight": 0.6, "vector": [0.0] * 8, "text": ""}).use_random is False
    # A user preset's slider positions go through the WebUI rule, as on the Synthesize tab:
    sliders = [0.0, 0.8] + [0.0] * 6
    from_sliders = Spec.from_record({"mode": "vector", "weight": 0.8, "sliders": sliders, "text": "", "use_random": True})
    assert from_sliders.vector == normalize_webui_vector(sliders) and from_sliders.use_random
    assert Spec.from_record({"mode": "vector", "vector": {"sad": 0.5}}).vector == (0, 0, 0.5, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match=r"emotion\.vector"):
        Spec.from_record({"mode": "vector", "vector": {"joy": 1}})
    with pytest.raises(ValueError, match="emotion must be an object"):
        Spec.from_record("angry")


def test_named_presets_come_from_one_file():
    from index_tts.emotion import builtin_presets, find_preset, preset_spec
    from index_tts.text.tags import parse

    presets = builtin_presets()
    names = [n.casefold() for p in presets for n in p["names"]]
    assert len(names) == len(set(names)), "a name may mean only one preset"
    assert {"angry", "excited", "cold_anger"} <= {p["id"] for p in presets}
    angry = preset_spec("angry")
    assert angry.vector[EMOTIONS.index("angry")] == pytest.approx(0.7) and angry.weight == 0.8
    assert preset_spec("ANGRY", 0.3).weight == 0.3 and find_preset("生气")["id"] == "angry"
    for preset in presets:          # the tag parser reads the same presets: [兴奋], [cold anger] ...
        (speech,) = parse(f"[{preset['names'][-1]}] Hello.")
        assert (speech.emotion.vector, speech.emotion.weight) == (preset_spec(preset["id"]).vector, preset["weight"])
    with pytest.raises(ValueError, match=r"emotion\.preset: unknown preset"):
        preset_spec("furious")
    record = EmotionSpec.from_record({"preset": "calm", "weight": 0.5})
    assert record == EmotionSpec(mode="vector", vector=preset_spec("calm").vector, weight=0.5)
    with pytest.raises(ValueError, match=r"emotion\.mode cannot be combined"):
        EmotionSpec.from_record({"preset": "calm", "mode": "text"})
