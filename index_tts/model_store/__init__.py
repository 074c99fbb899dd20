"""The model store: cache_hub/ as a Hugging Face hub cache, and the flat model folder.

layout.py   logical name -> real path (torch-free, no network; the engine loads through it)
model_files.py which files an IndexTTS2 model needs, and which of them a model folder lacks
download.py `python -m index_tts download`: fetch the manifest's repos with huggingface_hub
doctor.py   `python -m index_tts doctor`: what is present, sizes, hashes, disk, mount, speed
"""
