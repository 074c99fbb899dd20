"""IndexTTS Studio: an IndexTTS2-compatible emotional zero-shot TTS with a Gradio studio on top.

Importing this package does nothing: no torch, no model loading, no side effects.
"""

__version__ = "0.1.0"
