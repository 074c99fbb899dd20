"""The studio's data folder: generated audio, history, saved voices and presets, written atomically.

Layout under the data folder (default `./data`, or `$INDEX_TTS_DATA`, or `--data-dir`):

    outputs/<UTC time>_<random id>.wav     generated speech (one per history entry)
    history/<output stem>.json             what made an output: text, settings, segment timings
    history/<output stem>.srt              its subtitles (and .lines.zip for a dialogue's lines)
    history/voices/<hash>.wav              the voice references history entries regenerate with
    voices/<name>/voice.json               a saved voice: tags, note, default emotion
    voices/<name>/voice.wav                its reference audio (16-bit PCM)
    presets/<name>/preset.json             one saved preset (voice + every parameter)
    presets/<name>/voice.wav               its voice reference (and emotion.wav, if any)
    glossary.json                          custom term pronunciations {term: {"zh": .., "en": ..}}
    emotion_presets.json                   the user's own emotion presets (mode, sliders, weight)
    tmp/                                   uploads of requests in progress; tmp/gradio is Gradio's

Modules: `base` (the two store shapes, name rules), `datadir` (the layout, start-up clean-up),
one module per store. Atomic writes live in `index_tts.fileio`. Pure standard library.
"""

from index_tts.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from index_tts.storage.base import MAX_NAME_CHARS, FolderStore, JsonDocumentStore, Problem, sanitize_name
from index_tts.storage.datadir import DATA_ENV, DataDir, default_data_dir, unique_output_name
from index_tts.storage.emotion_presets import (EMOTION_PRESET_FORMAT_VERSION, MAX_EMOTION_PRESETS, USER_PRESET_MODES,
                                               EmotionPresetStore)
from index_tts.storage.glossary import (GLOSSARY_FILE, GLOSSARY_FORMAT_VERSION, MAX_GLOSSARY_CHARS, MAX_GLOSSARY_TERMS,
                                        GlossaryStore)
from index_tts.storage.history import HISTORY_FORMAT_VERSION, HistoryStore, Retention
from index_tts.storage.presets import PRESET_FILE, PRESET_FORMAT_VERSION, Preset, PresetProblem, PresetStore
from index_tts.storage.voices import (MAX_VOICE_NOTE_CHARS, MAX_VOICE_TAGS, VOICE_AUDIO, VOICE_FILE, VOICE_FORMAT_VERSION,
                                      Voice, VoiceExists, VoiceStore)

__all__ = [
    "DATA_ENV", "EMOTION_PRESET_FORMAT_VERSION", "GLOSSARY_FILE", "GLOSSARY_FORMAT_VERSION", "HISTORY_FORMAT_VERSION",
    "MAX_EMOTION_PRESETS", "MAX_GLOSSARY_CHARS", "MAX_GLOSSARY_TERMS", "MAX_NAME_CHARS", "MAX_VOICE_NOTE_CHARS",
    "MAX_VOICE_TAGS", "PRESET_FILE", "PRESET_FORMAT_VERSION", "USER_PRESET_MODES", "VOICE_AUDIO", "VOICE_FILE",
    "VOICE_FORMAT_VERSION", "DataDir", "EmotionPresetStore", "FolderStore", "GlossaryStore", "HistoryStore",
    "JsonDocumentStore", "Preset", "PresetProblem", "PresetStore", "Problem", "Retention", "Voice", "VoiceExists",
    "VoiceStore", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "default_data_dir",
    "sanitize_name", "unique_output_name",
]
