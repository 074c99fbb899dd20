"""The offline quick voice: espeak-ng speech, reshaped with the WORLD vocoder.

espeak.py   neutral speech from libespeak-ng 1.52 (ctypes)
prosody.py  WORLD analysis/resynthesis and the emotion rule table
voice.py    reference-voice profile and adaptation (F0 statistics, envelope warp)

Text emotion comes from `index_tts.text.emotion_lexicon`, shared with the IndexTTS2 engine's
fallback. The engine that ties them together is `index_tts.engines.quick.QuickVoiceEngine`.
"""
