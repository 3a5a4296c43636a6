"""JoJoGAN one-shot face stylization: the core library (never imports ComfyUI)."""

__version__ = "0.1.0"
