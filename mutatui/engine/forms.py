"""The valid forms of user input, quoted by one-line errors and by `--help`.

This module imports nothing heavy, so the CLI can build its help without loading torch.
"""

MODEL_FORMS = "smollm2, a model folder, a .gguf file, or a Hugging Face id in the local cache"
KIND_FORMS = "max, min, zero, or a number"
