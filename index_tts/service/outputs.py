"""Outputs: the audio file, its subtitles and its history record, written atomically; and the
history read back (list, files, delete, the request an entry was made with)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from index_tts.emotion import EmotionSpec
from index_tts.encoding import audio_format, encode
from index_tts.engines.base import EngineRequest, GenerationParams
from index_tts.service.errors import ValidationError, named
from index_tts.service.models import DEFAULT_MODEL
from index_tts.service.render import OUTPUT_SAMPLE_RATE
from index_tts.service.requests import Rendered, SynthesisRequest
from index_tts.service.uploads import audio_key
from index_tts.storage import atomic_write_bytes, atomic_write_text
from index_tts.subtitles import to_srt


class Outputs:
    """Part of the Synthesizer (a mixin): the output files and the history. Uses the
    Synthesizer's data (DataDir) and history (HistoryStore)."""

    def write_output(self, rendered: Rendered, fmt_name: str, record: dict) -> tuple[Path, Path, str]:
        """Write audio (outputs/), subtitles and the history record; returns (audio, srt, history id)."""
        fmt = audio_format(fmt_name)
        path = self.data.new_output_path(fmt.suffix)
        atomic_write_bytes(path, encode(rendered.audio, OUTPUT_SAMPLE_RATE, fmt))
        entry_id = path.name.split(".")[0]
        srt = self.history.side_file(entry_id, ".srt")
        atomic_write_text(srt, to_srt((s.text, s.start_s, s.end_s) for s in rendered.timeline))
        self.history.add(path, {
            **record,
            "format": fmt.name,
            "duration_s": round(len(rendered.audio) / OUTPUT_SAMPLE_RATE, 3),
            "engine": rendered.engine,
            "segments": [s.as_dict() for s in rendered.timeline],
            "srt": srt.name,
        })
        return path, srt, entry_id

    def _keep_audio(self, samples: np.ndarray, sample_rate: int) -> str:
        buffer = io.BytesIO()
        # 32-bit float keeps the decoded samples exactly: a regenerated voice hits the same caches.
        sf.write(buffer, samples, sample_rate, format="WAV", subtype="FLOAT")
        return self.history.keep_voice(audio_key(samples, sample_rate), buffer.getvalue())

    def _request_record(self, request: SynthesisRequest, base: EngineRequest) -> dict:
        """Everything needed to run `request` again, as JSON (audio kept under history/voices)."""
        emotion = base.emotion
        record_emotion = emotion.to_record()
        if emotion.mode == "audio":
            record_emotion["audio"] = self._keep_audio(emotion.audio, emotion.audio_sr)
        generation = {name: getattr(base.generation, name) for name in base.generation.__dataclass_fields__}
        return {"text": request.text, "voice": self._keep_audio(base.voice, base.voice_sr), "emotion": record_emotion,
                "generation": generation, "output_format": audio_format(request.output_format).name,
                "use_glossary": request.use_glossary, "speed": float(request.speed),
                "model": request.model or self.default_model, "language": request.language.lower(),
                "duration": request.duration}

    def request_from_history(self, entry_id: str) -> SynthesisRequest:
        """The request a speech history entry was made with; ValidationError("history") otherwise.
        Records from before the model choice were made by IndexTTS2 and read as such."""
        try:
            record = self.history.get(entry_id)
            saved = record.get("request")
            if record.get("kind") != "speech" or not isinstance(saved, dict):
                raise ValueError("only single-voice results can be regenerated here")
            emotion = dict(saved["emotion"])
            audio = self.history.voice_file(emotion.pop("audio")) if emotion.get("mode") == "audio" else None
            spec = EmotionSpec.from_record(emotion)
            return SynthesisRequest(text=saved["text"], voice=self.history.voice_file(saved["voice"]), emotion=spec,
                                    generation=GenerationParams(**saved["generation"]), emotion_audio=audio,
                                    output_format=saved.get("output_format", "wav"),
                                    use_glossary=bool(saved.get("use_glossary", True)), speed=float(saved.get("speed", 1.0)),
                                    model=saved.get("model", DEFAULT_MODEL), language=saved.get("language", "auto"),
                                    duration=saved.get("duration"))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValidationError("history", str(e).strip("'\"")) from e

    def list_history(self, limit: int = 200) -> list[dict]:
        """History records, newest first."""
        return self.history.list(limit)

    def get_history(self, entry_id: str) -> dict:
        with named("history entry", entry_id, "history"):
            return self.history.get(entry_id)

    def history_files(self, entry_id: str) -> list[Path]:
        """An entry's files: its audio first, then its subtitles and line zip where it has them."""
        record = self.get_history(entry_id)
        sides = (self.history.side_file(entry_id, ".srt"), self.history.side_file(entry_id, ".lines.zip"))
        return [self.history.audio_path(record), *(p for p in sides if p.is_file())]

    def delete_history(self, entry_id: str) -> None:
        with named("history entry", entry_id, "history"):
            if not self.history.delete(entry_id):
                raise FileNotFoundError(entry_id)
