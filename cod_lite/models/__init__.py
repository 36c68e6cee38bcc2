"""Network definitions: the condition codec and the one-step denoiser."""
