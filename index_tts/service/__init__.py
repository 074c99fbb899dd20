"""The synthesizer service: the only door the front ends (webui.py, index_tts/ui, the HTTP API)
use. They import from here, never from the modules below or from storage and engines; this
package re-exports every value type and error they need.

    errors.py       ValidationError, NotFound, Conflict, NotReady, Busy, Cancelled, TimedOut
    checks.py       Limits, and the checks every text, name and number passes (bad input -> 4xx)
    uploads.py      decoding uploaded audio into a voice
    requests.py     SynthesisRequest (and its validate()), the result types
    render.py       text -> audio, tag by tag (nothing written)
    outputs.py      output files, subtitles and history records; regenerating from history
    library.py      voices (and the library zip), presets, emotion presets, glossary
    dialogue.py     `Role: line` scripts voiced as one admitted job; one line regenerated alone
    audition.py     one line in several emotions, take by take, as one admitted job
    clips.py        clips (one keyed, kept stretch of speech) for dubbing, dialogue lines and projects
    books.py        importing text, Markdown and EPUB into chapters; chapters into segments
    projects.py     long-form projects: import, edit, resumable render, export
    audiobook.py    a project's export: chapter files, the MP3 audiobook with chapter frames, its SRT
    dubbing.py      subtitle-timed dubbing jobs (SRT/WebVTT cues voiced onto one track)
    synthesizer.py  the Synthesizer (loading, status, admission, synthesize) and the process's one instance
    models.py       the served models (indextts-2, indextts-2.5), their loading, the text languages
    launch.py       choosing the engines at launch (the model store's findings, the reason)
See docs/service-api.md for the methods.
"""

from index_tts.emotion import (DEFAULT_WEIGHT, EMOTION_MODES, EMOTIONS, EmotionSpec, find_preset, normalize_webui_vector,
                               preset_spec)
from index_tts.emotion import builtin_presets as builtin_emotion_presets
from index_tts.encoding import FORMAT_NAMES, AudioFormat, audio_format, encode
from index_tts.engines.base import GenerationParams, ProgressFn, no_progress
from index_tts.service.audition import MAX_TAKES, Take, pure_presets
from index_tts.service.checks import AudioInput, Limits, bad_character, check_name, check_number, check_text
from index_tts.service.clips import LocalRunner, Runner
from index_tts.service.dialogue import (MAX_LINES, MAX_PAUSE_MS, MAX_ROLES, DialogueResult, Line, RoleSetting, compose,
                                        compose_from_history, parse_script, roles_of)
from index_tts.service.dubbing import FIT_MODES, MAX_CUES, DubbingResult, subtitle_roles
from index_tts.service.errors import (AlreadyExists, Busy, Cancelled, Conflict, NotFound, NotReady, ServiceError, State,
                                      TimedOut, ValidationError)
from index_tts.service.launch import MODEL_FLAGS, EngineUnavailable, choose_engine, choose_models, prepare_gradio_temp
from index_tts.service.library import UPLOAD_FOLDER, Preset, Problem, Voice
from index_tts.service.projects import (UNCHANGED, Chapter, ChapterProgress, ExportResult, Project, ProjectProgress,
                                        RenderReport, check_project_name)
from index_tts.service.models import DEFAULT_MODEL, MODEL_IDS, TEXT_LANGUAGES, ModelChoice
from index_tts.service.render import OUTPUT_SAMPLE_RATE, describe_emotion, title_of
from index_tts.service.requests import PlannedSegment, Rendered, SynthesisRequest, SynthesisResult, TimedSegment
from index_tts.service.synthesizer import EngineFactory, ModelInfo, Status, Synthesizer, get_synthesizer, init_synthesizer
from index_tts.engines.timing import DURATION_FACTOR_RANGE, tolerance_s
from index_tts.service.uploads import audio_key, decode_audio

__all__ = [
    "DEFAULT_WEIGHT", "EMOTION_MODES", "EMOTIONS", "EmotionSpec", "find_preset", "normalize_webui_vector", "preset_spec",
    "builtin_emotion_presets", "MAX_TAKES", "Take", "pure_presets", "FORMAT_NAMES", "AudioFormat", "audio_format", "encode", "GenerationParams",
    "ProgressFn", "no_progress", "AudioInput", "Limits", "bad_character", "check_name", "check_number", "check_text",
    "MAX_LINES", "MAX_PAUSE_MS", "MAX_ROLES", "DialogueResult", "Line", "RoleSetting", "compose",
    "compose_from_history", "parse_script", "roles_of", "AlreadyExists", "Busy", "Cancelled", "Conflict", "NotFound",
    "NotReady", "ServiceError", "State", "TimedOut", "ValidationError", "UPLOAD_FOLDER", "Preset", "Problem", "Voice",
    "OUTPUT_SAMPLE_RATE", "describe_emotion", "title_of", "PlannedSegment", "Rendered", "SynthesisRequest",
    "SynthesisResult", "TimedSegment", "EngineFactory", "Status", "Synthesizer", "get_synthesizer", "init_synthesizer",
    "audio_key", "decode_audio", "EngineUnavailable", "choose_engine", "prepare_gradio_temp",
    "UNCHANGED", "Chapter", "ChapterProgress", "ExportResult", "Project", "ProjectProgress", "RenderReport",
    "check_project_name", "LocalRunner", "Runner",
    "MODEL_FLAGS", "choose_models", "DEFAULT_MODEL", "MODEL_IDS", "TEXT_LANGUAGES", "ModelChoice", "ModelInfo",
    "FIT_MODES", "MAX_CUES", "DubbingResult", "subtitle_roles", "DURATION_FACTOR_RANGE", "tolerance_s",
]
