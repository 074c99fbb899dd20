"""The Gradio studio page (`index_tts.ui.app.build_ui`). Importing this package imports nothing."""
