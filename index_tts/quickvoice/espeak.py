"""Neutral speech from libespeak-ng 1.52, driven through ctypes.

We use the library bundled in the `espeakng-loader` wheel rather than Debian's espeak-ng 1.51,
whose `cmn` voice reads pinyin tone digits as English words ("ni-three hao-three"). The library
keeps global state (current voice, callback, output buffer), so every call goes through one
module lock. The library is opened on first use, never at import.

Repeatability: from a fresh process, with its noise generator seeded (`espeak_ng_SetRandSeed`),
espeak's output is bit-exact. But its wave generator keeps phase and flutter state from one
utterance to the next, and neither re-seeding nor `espeak_Terminate` + `espeak_Initialize`
resets it, so speaking the same sentence twice in one process can differ by a few samples.
Results are therefore memoised per (voice, rate, text): within a process the same text always
gives the same samples, which is what makes the quick voice deterministic per seed.

Constants below are from espeak-ng's `speak_lib.h` (1.52).
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
from collections import OrderedDict

import numpy as np

SAMPLE_RATE = 22050  # what espeak_Initialize returns; checked at load

_AUDIO_OUTPUT_SYNCHRONOUS = 2  # callback is called from inside espeak_Synth
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1    # words per minute
_PARAM_PITCH = 3   # 0..100, 50 is the voice's normal
_PARAM_RANGE = 4   # 0..100, 50 is the voice's normal

ENGLISH = "en-us"
MANDARIN = "cmn"

# short *wav, int numsamples, espeak_EVENT *events -> 0 to continue
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_callback = None          # kept referenced so ctypes does not free the trampoline
_chunks: list[np.ndarray] = []
_voice: str | None = None
_cache: OrderedDict[tuple[str, int, str], np.ndarray] = OrderedDict()
_CACHE_SIZE = 512  # sentences; ~100 kB each

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")


class EspeakError(RuntimeError):
    pass


def voice_for(text: str) -> str:
    """Mandarin for any text containing Han characters (its voice reads embedded Latin as
    English), US English otherwise."""
    return MANDARIN if _CJK.search(text) else ENGLISH


def _collect(wav, numsamples, events) -> int:
    if wav and numsamples > 0:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
    return 0


def _load() -> ctypes.CDLL:
    """Open and initialise the library once. Caller holds the lock."""
    global _lib, _callback
    if _lib is not None:
        return _lib
    try:
        import espeakng_loader
    except ImportError as e:  # pragma: no cover - the wheel is a pinned requirement
        raise EspeakError("espeakng-loader is not installed; the quick voice needs it") from e
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
        ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]
    # espeak wants the folder that *contains* espeak-ng-data
    data_parent = os.path.dirname(espeakng_loader.get_data_path()).encode()
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent, 0)
    if rate != SAMPLE_RATE:
        raise EspeakError(f"espeak_Initialize returned {rate}, expected {SAMPLE_RATE} Hz")
    _callback = _SynthCallback(_collect)
    lib.espeak_SetSynthCallback(_callback)
    _lib = lib
    return lib


def speak(text: str, voice: str | None = None, words_per_minute: int = 165) -> np.ndarray:
    """Speak `text` with espeak's neutral prosody.

    Returns float32 mono in [-1, 1] at SAMPLE_RATE, with leading/trailing silence trimmed to
    30 ms. Empty input gives an empty array.
    """
    global _voice
    text = text.strip()
    if not text:
        return np.zeros(0, np.float32)
    voice = voice or voice_for(text)
    key = (voice, int(words_per_minute), text)
    encoded = text.encode("utf-8")
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key].copy()
        lib = _load()
        if voice != _voice:
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise EspeakError(f"espeak-ng has no voice {voice!r}")
            _voice = voice
        # voice changes reset parameters, so set them every call
        lib.espeak_SetParameter(_PARAM_RATE, int(words_per_minute), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, 50, 0)
        lib.espeak_SetParameter(_PARAM_RANGE, 50, 0)
        lib.espeak_ng_SetRandSeed(1)  # breath noise
        _chunks.clear()
        status = lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        pcm = np.concatenate(_chunks) if _chunks else np.zeros(0, np.int16)
        _chunks.clear()
        if status != 0:
            raise EspeakError(f"espeak_Synth failed with status {status}")
        wav = _trim(pcm.astype(np.float32) / 32768.0)
        _cache[key] = wav
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return wav.copy()


def _trim(wav: np.ndarray, threshold: float = 1e-3, pad_s: float = 0.03) -> np.ndarray:
    loud = np.flatnonzero(np.abs(wav) > threshold)
    if loud.size == 0:
        return np.zeros(0, np.float32)
    pad = int(pad_s * SAMPLE_RATE)
    return wav[max(loud[0] - pad, 0): loud[-1] + pad + 1]
