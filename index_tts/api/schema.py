"""The bodies of the speech request (types only: ranges and meaning are checked by the service),
their OpenAPI schemas, and turning a body into a SynthesisRequest."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from index_tts.service import (DEFAULT_WEIGHT, EMOTIONS, FORMAT_NAMES, MODEL_IDS, TEXT_LANGUAGES, EmotionSpec, GenerationParams,
                               SynthesisRequest, Synthesizer, ValidationError, audio_format, builtin_emotion_presets)

# OpenAI's model names: they ask for the studio's default model. "indextts2": this API's old default.
DEFAULT_MODEL_NAMES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "indextts2")


class EmotionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["same_as_voice", "audio", "vector", "text"] = Field(
        "same_as_voice", description="same_as_voice | audio (an emotion reference) | vector (8 weights) | text")
    preset: str | None = Field(None, description="a built-in emotion preset instead of mode/vector: "
                               + ", ".join(p["id"] for p in builtin_emotion_presets()) + " (weight: its own unless given)")
    weight: float = Field(DEFAULT_WEIGHT, description="emotion strength (emo_alpha), 0..1")
    vector: list[float] | dict[str, float] | None = Field(
        None, description=f"vector mode: 8 values in [0, 1.2] in the order {', '.join(EMOTIONS)}, or an object by name")
    text: str | None = Field(None, description="text mode: a description of the emotion (empty: read it from `input`)")
    voice: str | None = Field(None, description="audio mode: a saved voice to use as the emotion reference")
    random: bool = Field(False, description="pick random emotion rows instead of the speaker's nearest")


class GenerationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    do_sample: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    num_beams: int | None = None
    repetition_penalty: float | None = None
    length_penalty: float | None = None
    max_mel_tokens: int | None = None
    max_text_tokens_per_segment: int | None = None
    interval_silence_ms: int | None = None
    seed: int | None = None
    quality: str | None = Field(None, description='"exact" (default: upstream\'s computation), "balanced" (the same codes, the '
                                                  'mel decoder and vocoder in bf16 where the hardware has it) or "fast" (balanced '
                                                  'plus fewer DiT steps and a shorter DiT prompt, and on a CPU the GPT on bf16 '
                                                  'weights: codes may differ from exact); see docs/performance.md')
    duration_factor: float | None = Field(None, description="tempo, 0.5-2.0 (> 1 speaks slower): the same words rendered "
                                                            "longer or shorter at a natural pitch (IndexTTS2 and 2.5: "
                                                            "their length regulator; the quick voice: its WORLD tempo)")


class SpeechBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, max_length=200, description=f"{' or '.join(MODEL_IDS)} (GET /v1/models lists those served); "
                              f"{', '.join(DEFAULT_MODEL_NAMES)} or none: the studio's default model")
    input: str = Field(description="the text to speak")
    voice: str | None = Field(None, description="a saved voice (GET /v1/voices); multipart requests may upload `voice_file` instead")
    response_format: str = Field("mp3", description=f"one of {', '.join(FORMAT_NAMES)}")
    speed: float = Field(1.0, description="0.25..4.0; rendered by the engine's tempo (duration_factor / speed) where that "
                                          "stays in 0.5-2.0, else a pitch-preserving time stretch of the result")
    duration: float | None = Field(None, description="the length of the result in seconds: the engine picks the tempo "
                                                     "(within 1 % or 20 ms); out of reach -> 422 with param `duration` and "
                                                     "the reachable range. Not with speed")
    instructions: str | None = Field(None, description="OpenAI's style instructions: used as the emotion text when `emotion` is absent")
    stream: bool = Field(False, description="send audio as each segment finishes (pcm, wav: progressively)")
    emotion: EmotionBody | None = None
    generation: GenerationBody | None = None
    use_glossary: bool = True
    language: str = Field("auto", max_length=20, description=f"IndexTTS-2.5's text language: {', '.join(TEXT_LANGUAGES)} "
                                                             "(zh-en: mixed Chinese and English; auto: from the script). "
                                                             "IndexTTS2 ignores it")


def model_of(body: SpeechBody) -> str | None:
    """The service's model for a body's `model`: None (the default) for OpenAI's names."""
    if body.model is None or body.model in DEFAULT_MODEL_NAMES:
        return None
    if body.model not in MODEL_IDS:
        raise ValidationError("model", f"must be one of {', '.join(MODEL_IDS)}, or {', '.join(DEFAULT_MODEL_NAMES)} for the "
                                       f"default model; got {body.model[:80]!r}")
    return body.model


def build_request(synth: Synthesizer, body: SpeechBody, voice_file: Path | None, emotion_file: Path | None) -> SynthesisRequest:
    """The service's request for a checked body (and the uploads of a multipart one)."""
    if voice_file is not None:
        voice = voice_file
    elif body.voice is not None:
        voice = synth.voice_path(body.voice)
    else:
        raise ValidationError("voice", "name a saved voice (GET /v1/voices) or upload voice_file")
    emo = body.emotion
    if emo is None and body.instructions:
        emo = EmotionBody(mode="text", text=body.instructions)
    emotion, emotion_audio = EmotionSpec(), None
    if emo is not None:
        record = emo.model_dump(exclude_unset=True)
        record["use_random"] = record.pop("random", False)
        saved_voice = record.pop("voice", None)
        try:
            emotion = EmotionSpec.from_record(record)
        except ValueError as e:
            raise ValidationError(str(e).split(" ", 1)[0].rstrip(":"), str(e)) from e
        if emotion.mode == "audio":
            if emotion_file is not None:
                emotion_audio = emotion_file
            elif saved_voice is not None:
                try:
                    emotion_audio = synth.voice_path(saved_voice)
                except ValidationError as e:
                    raise ValidationError("emotion.voice", str(e).removeprefix("voice: ")) from e
            else:
                raise ValidationError("emotion.voice", "audio mode needs a saved voice name or an emotion_file upload")
    given = body.generation.model_dump(exclude_none=True) if body.generation is not None else {}
    return SynthesisRequest(text=body.input, voice=voice, emotion=emotion, generation=GenerationParams(**given),
                            emotion_audio=emotion_audio, output_format=body.response_format,
                            use_glossary=body.use_glossary, speed=body.speed, model=model_of(body), language=body.language,
                            duration=body.duration)


def inline_refs(schema: dict) -> dict:
    """pydantic puts nested models in "$defs" and points at them; OpenAPI's requestBody schema
    must stand alone, so replace every reference with the definition itself."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node and node["$ref"].startswith("#/$defs/"):
                return resolve(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


SPEECH_SCHEMA = inline_refs(SpeechBody.model_json_schema())
MULTIPART_SPEECH_SCHEMA = {
    "type": "object",
    "required": ["input"],
    "properties": {
        **{k: v for k, v in SPEECH_SCHEMA["properties"].items() if k not in ("emotion", "generation")},
        "emotion": {"type": "string", "description": "the `emotion` object as JSON text"},
        "generation": {"type": "string", "description": "the `generation` object as JSON text"},
        "voice_file": {"type": "string", "format": "binary", "description": "a reference voice (wav, flac, mp3, ogg)"},
        "emotion_file": {"type": "string", "format": "binary", "description": "emotion reference (emotion.mode = audio)"},
    },
}
VOICE_UPLOAD_SCHEMA = {
    "type": "object", "required": ["name", "file"],
    "properties": {
        "name": {"type": "string", "description": "letters, digits, space, - and _; other characters become _"},
        "file": {"type": "string", "format": "binary", "description": "the reference (wav, flac, mp3, ogg)"},
        "tags": {"type": "string", "description": "comma-separated"},
        "note": {"type": "string"},
        "overwrite": {"type": "boolean", "description": "replace a voice of the same name (default false)"},
    }}
DUBBING_SCHEMA = {
    "type": "object", "required": ["subtitles"],
    "properties": {
        "subtitles": {"type": "string", "format": "binary", "description": "an SRT or WebVTT file (UTF-8), or its text"},
        "voice": {"type": "string", "description": "a saved voice for every cue (or `roles`)"},
        "roles": {"type": "string", "description": 'JSON: {"Role": "saved voice", ...}; a cue\'s role is its WebVTT '
                                                   '<v Role> or a `Role:` prefix; "*" voices cues without one'},
        "fit": {"type": "string", "enum": ["natural", "fit", "stretch"], "default": "natural"},
        "response_format": {"type": "string", "default": "wav", "description": "wav, flac, mp3, ogg or opus"},
        "seed": {"type": "integer", "description": "cue n is spoken with seed + n (default: a random seed)"},
        "generation": {"type": "string", "description": "the `generation` object as JSON text"},
    }}
AUDIO_TYPES = {audio_format(name).media_type: {"schema": {"type": "string", "format": "binary"}} for name in FORMAT_NAMES}
